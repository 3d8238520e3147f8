"""The base of every config model: what a section of the YAML may and may not be."""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """Base of every config model.

    strict: YAML already types its scalars, so a quoted "60" or a `yes` where a number belongs is a mistake
    to report, not to coerce. extra="forbid": an unknown key is a typo to name, not to ignore.
    validate_default: defaults get the same checks and the same validation context (the config file's
    folder) as values from the file. YAML's .inf and .nan are never a sensible setting."""

    model_config = ConfigDict(extra="forbid", strict=True, validate_default=True, allow_inf_nan=False)
