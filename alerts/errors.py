"""The alerts exception tree: attributes carry the data, never patient values."""

from __future__ import annotations

import uuid

__all__ = [
    "AlertsError",
    "EpisodeNotFound",
    "InvalidAction",
    "InvalidSymptoms",
    "InvalidThreshold",
    "InvalidTransition",
]


class AlertsError(Exception):
    """Base of every error raised by ``alerts``."""


class EpisodeNotFound(AlertsError, LookupError):
    def __init__(self, episode_id: uuid.UUID) -> None:
        super().__init__(f"no alert episode {episode_id}")
        self.episode_id = episode_id


class InvalidTransition(AlertsError):
    """The episode's state does not allow the action (or its arguments are invalid)."""

    def __init__(self, episode_id: uuid.UUID, state: str, action: str, detail: str = "") -> None:
        text = f"cannot {action} episode {episode_id} in state {state!r}"
        super().__init__(text + (f": {detail}" if detail else ""))
        self.episode_id = episode_id
        self.state = state
        self.action = action
        self.detail = detail


class InvalidAction(InvalidTransition, ValueError):
    """A person's action was refused for its input (the web answers 422 naming ``field``):
    a system-only or missing outcome, no note on a critical resolve, a snooze too long or on a
    critical episode, an empty assignee or reason."""

    def __init__(
        self, episode_id: uuid.UUID, state: str, action: str, field: str, detail: str
    ) -> None:
        super().__init__(episode_id, state, action, f"{field}: {detail}")
        self.field = field


class InvalidThreshold(AlertsError, ValueError):
    def __init__(self, parameter: str, detail: str) -> None:
        super().__init__(f"threshold {parameter!r}: {detail}")
        self.parameter = parameter
        self.detail = detail


class InvalidSymptoms(AlertsError, ValueError):
    """A symptom report that cannot be recorded; ``field`` names the input at fault."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(f"symptom report {field!r}: {detail}")
        self.field = field
        self.detail = detail
