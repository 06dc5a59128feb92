"""Labels in (#21): chargebacks and analysts' verdicts, read from files (`records.py`, pure),
picked up from S3 by the fleet (`pickup.py`) and applied to the merchants' profiles through
`consumer/state/labels.py`. The format is docs/contract.md, "Labels"; operations docs/labels.md."""
