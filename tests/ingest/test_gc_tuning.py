"""``tune_gc``: start-up objects frozen out of the collector's sight, full collections rarer
(run in a fresh interpreter: the policy is process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_tune_gc_freezes_start_up_and_spaces_full_collections() -> None:
    code = (
        "import gc, json; from ingest.service import FULL_COLLECTION_EVERY, tune_gc;"
        "before = gc.get_threshold(); tune_gc();"
        "print(json.dumps([gc.get_freeze_count(), before, gc.get_threshold(),"
        " FULL_COLLECTION_EVERY]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    frozen, before, after, every = json.loads(out)
    assert frozen > 10_000  # the modules ingest imports: never scanned again
    assert after == [before[0], before[1], every]
    assert every > before[2]
