"""The file-hash cache is saved atomically by every writer at once."""

import json
import threading

from alignjax.io import hashing


def test_concurrent_saves_never_collide_or_leave_temporaries(tmp_path):
    path = tmp_path / "cache" / "hashes.json"
    errors = []

    def save():
        try:
            for _ in range(40):
                hashing.save_cache(path)
        except OSError as err:              # a shared temporary name: FileNotFoundError
            errors.append(err)
    threads = [threading.Thread(target=save) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[0]
    assert isinstance(json.loads(path.read_text()), dict)
    assert [p.name for p in path.parent.iterdir()] == [path.name]
