"""Seconds per training iteration in a cyclegan-train run, from its loss_log.jsonl: between the
first and the last record, so that start-up and the first print period are left out.

    python3 scripts/loss-log-rate.py checkpoints/NAME/loss_log.jsonl
"""

import json
import sys

rows = [json.loads(line) for line in open(sys.argv[1])]
first, last = rows[0], rows[-1]
print((last["seconds"] - first["seconds"]) / (last["iteration"] - first["iteration"]))
