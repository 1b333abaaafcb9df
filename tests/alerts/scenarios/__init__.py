"""An independent scenario suite for alerts/: each scenario encodes one guideline sentence (quoted,
with its source), states the readings, actions and the episodes/notifications a nurse must see,
and runs through the public ``alerts.replay``. No scenario imports a threshold from the code:
every number is written here, from the guideline, on both sides of its boundary."""
