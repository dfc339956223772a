"""The one exception hierarchy of onscreen.

    OnscreenError
    ├── MediaError      input pixels we cannot or will not decode (corrupt, truncated, too big)
    ├── ModelError      a model cannot be loaded or run (missing weights, bad file)
    │   └── WeightsError    a weights file is missing, unfetchable or fails its sha256
    ├── RulesError      (targeting.errors) advertiser rules that do not validate
    ├── Overloaded      (serving) more work than the bounded queues hold
    └── PlacementStoreError (serving.placement_store) a store file that is not ours or unusable

It lives in ``vision`` because ``vision`` is the bottom of the one-way dependency chain
(vision <- targeting <- serving): every package can import it, and ``serving`` maps each class
to one gRPC status code in a single place, so nothing escapes as UNKNOWN.
"""

from __future__ import annotations


class OnscreenError(Exception):
    """Base of every error onscreen raises on purpose; its message is meant for a person."""


class MediaError(OnscreenError):
    """Media that cannot be decoded or breaks a decode limit. The message names the source."""


class ModelError(OnscreenError):
    """A model that cannot be loaded or run."""


class WeightsError(ModelError):
    """A weights file that is missing, cannot be fetched, or does not match its sha256."""


class Overloaded(OnscreenError):
    """More work was offered than the bounded queues hold; the caller should back off."""
