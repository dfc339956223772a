"""Keep the last good rules while advertisers edit them: ``RulesHolder`` and its file watcher.

The design promises that a bad edit during ``serve`` keeps the last good rules running (and is
reported), and a good edit is picked up without a restart. So:

- the first load must succeed: bad rules at start-up raise ``RulesError`` (a server that starts
  with no campaigns would silently earn nothing);
- ``reload()`` loads the whole directory again; on problems it logs each one as ``file:line``
  and keeps the previous ``RuleSet``; on success with a new ``version`` it swaps;
- ``on_change(new_rules)`` runs *before* the swap (while the old rules still serve), so the caller
  can build what depends on the rules (concept embedding matrix, logo index) and, by raising,
  veto a version it cannot serve: the old rules stay, and the error is reported like a problem;
- readers call ``holder.current`` (one attribute read under a lock) and keep using the
  ``RuleSet`` they got for the whole request: a ``RuleSet`` is immutable, so a swap never
  changes rules under a request's feet.

The watcher uses ``watchfiles`` (inotify/FSEvents, or polling with ``force_polling`` for network
and container mounts) on the whole rules root, so campaigns, brand images and example images
are all covered. Changes are debounced (editors write a temp file and rename it; a ``git pull``
touches many files) and one reload runs per batch.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from targeting.rules_loader import RuleSet, load_rules
from vision.errors import RuleProblem, RulesError

log = logging.getLogger(__name__)

DEFAULT_DEBOUNCE_MS = 300
"""File changes closer together than this (milliseconds) cause one reload."""
WATCH_STEP_MS = 50
"""How often (milliseconds) the watcher checks for changes and for its stop event."""
WATCH_HEARTBEAT_MS = 500
"""The watcher wakes at least this often (milliseconds) even with no change (sets ``ready``)."""
DEFAULT_STOP_TIMEOUT_S = 5.0
"""How long ``RulesWatcher.stop`` waits for the watcher thread to end, in seconds."""

OnChange = Callable[[RuleSet], None]
OnReload = Callable[["ReloadResult"], None]


@dataclass(frozen=True)
class ReloadResult:
    """What one ``reload()`` did.

    ``ok``: the directory validated and (if it changed) ``on_change`` accepted it.
    ``changed``: the served rules were swapped for a new version.
    ``problems``: why not ok (empty when ok). ``version``: the version served after the call.
    """

    changed: bool
    ok: bool
    problems: tuple[RuleProblem, ...]
    version: str


class RulesHolder:
    """The rules a server is using now, reloadable and thread-safe.

    ``path`` is the rules root (see ``targeting.rules_loader``). ``on_change`` is called with
    every new ``RuleSet`` before it is served, including the first one (so one code path builds
    rule-dependent state); an exception from it at start-up propagates, later it vetoes the swap.
    ``on_reload`` is told the outcome of every reload that changed something or failed (for
    metrics and alerts: a rejected edit must not go unnoticed). ``initial``: the directory
    already parsed by the caller (so a server parses it once at start-up). Raises
    ``RulesError`` if the rules do not validate at start-up.
    """

    def __init__(
        self,
        path: str | Path,
        on_change: OnChange | None = None,
        *,
        on_reload: OnReload | None = None,
        initial: RuleSet | None = None,
    ) -> None:
        self.path = Path(path)
        self._on_change = on_change
        self._on_reload = on_reload
        self._swap_lock = threading.Lock()
        self._reload_lock = threading.Lock()
        rules = initial if initial is not None else load_rules(self.path)
        if on_change is not None:
            on_change(rules)
        self._current = rules
        self._last = ReloadResult(changed=True, ok=True, problems=(), version=rules.version)
        log.info(
            "rules loaded from %s: %d campaign(s), %d brand(s), version %s",
            rules.root,
            len(rules.campaigns),
            len(rules.brands),
            rules.version[:12],
        )

    @property
    def current(self) -> RuleSet:
        """The last good rules. Keep the returned object for the whole request."""
        with self._swap_lock:
            return self._current

    @property
    def last_result(self) -> ReloadResult:
        """The outcome of the latest load or reload (for health checks and metrics)."""
        with self._swap_lock:
            return self._last

    def reload(self) -> ReloadResult:
        """Load the directory again; swap on a good new version, keep the old one otherwise.

        Never raises for bad rules: problems are logged (one line each, ``file:line: field:
        message``) and returned. Reloads are serialized, so two watchers or a watcher and an
        admin call cannot interleave.
        """
        result = self._reload()
        if self._on_reload is not None and (result.changed or not result.ok):
            self._on_reload(result)
        return result

    def _reload(self) -> ReloadResult:
        with self._reload_lock:
            old = self.current
            try:
                new = load_rules(self.path)
            except RulesError as exc:
                return self._keep(old, tuple(exc.problems))
            except OSError as exc:  # a file vanished between listing and reading it
                problem = RuleProblem(str(self.path), None, "", f"cannot read rules: {exc}")
                return self._keep(old, (problem,))
            except Exception as exc:  # a bug in the loader: still a rejected reload, not silence
                log.exception("loading rules from %s failed unexpectedly", self.path)
                problem = RuleProblem(
                    str(self.path), None, "", f"rules could not be loaded ({type(exc).__name__})"
                )
                return self._keep(old, (problem,))
            if new.version == old.version:
                result = ReloadResult(changed=False, ok=True, problems=(), version=old.version)
                with self._swap_lock:
                    self._last = result
                return result
            if self._on_change is not None:
                try:
                    self._on_change(new)
                except Exception as exc:  # the caller's hook: report it, keep serving
                    log.exception("rules version %s refused by on_change", new.version[:12])
                    problem = RuleProblem(
                        str(self.path), None, "", f"new rules could not be applied: {exc}"
                    )
                    return self._keep(old, (problem,))
            result = ReloadResult(changed=True, ok=True, problems=(), version=new.version)
            with self._swap_lock:
                self._current = new
                self._last = result
            log.info(
                "rules reloaded from %s: %d campaign(s), version %s -> %s",
                new.root,
                len(new.campaigns),
                old.version[:12],
                new.version[:12],
            )
            return result

    def _keep(self, old: RuleSet, problems: tuple[RuleProblem, ...]) -> ReloadResult:
        log.error(
            "rules in %s have %d problem(s); still serving version %s",
            self.path,
            len(problems),
            old.version[:12],
        )
        for p in problems:
            log.error("  %s", p)
        result = ReloadResult(changed=False, ok=False, problems=problems, version=old.version)
        with self._swap_lock:
            self._last = result
        return result

    def watch(
        self,
        stop_event: threading.Event,
        *,
        debounce_ms: int = DEFAULT_DEBOUNCE_MS,
        force_polling: bool | None = None,
        ready: threading.Event | None = None,
    ) -> None:
        """Block, reloading after each (debounced) batch of changes, until ``stop_event`` is set.

        Run it in a thread (``start_watching`` does). ``ready`` is set once the file watcher is
        running, so a caller knows later edits will be seen. ``force_polling`` is for mounts
        without change notifications (NFS, some container volumes). An unexpected error in a
        reload is logged and the watcher goes on.
        """
        import watchfiles

        for changes in watchfiles.watch(
            self.path,
            debounce=debounce_ms,
            step=WATCH_STEP_MS,
            stop_event=stop_event,
            rust_timeout=WATCH_HEARTBEAT_MS,
            yield_on_timeout=True,
            force_polling=force_polling,
            raise_interrupt=False,
        ):
            if ready is not None:
                ready.set()
            if not changes:
                continue
            log.debug("rules changed: %s", sorted(p for _, p in changes))
            try:
                self.reload()
            except Exception:
                log.exception(
                    "reloading rules from %s failed; still serving the last good", self.path
                )

    def start_watching(
        self, *, debounce_ms: int = DEFAULT_DEBOUNCE_MS, force_polling: bool | None = None
    ) -> RulesWatcher:
        """Start ``watch`` in a daemon thread; stop it with ``RulesWatcher.stop()``."""
        stop = threading.Event()
        ready = threading.Event()
        thread = threading.Thread(
            target=self.watch,
            args=(stop,),
            kwargs={"debounce_ms": debounce_ms, "force_polling": force_polling, "ready": ready},
            name=f"rules-watch:{self.path.name}",
            daemon=True,
        )
        thread.start()
        return RulesWatcher(thread, stop, ready)


@dataclass(frozen=True)
class RulesWatcher:
    """A running watcher thread. ``ready`` is set once changes are being watched."""

    thread: threading.Thread
    stop_event: threading.Event
    ready: threading.Event

    def stop(self, timeout_s: float = DEFAULT_STOP_TIMEOUT_S) -> None:
        """Ask the watcher to stop and wait for its thread (at most ``timeout_s`` seconds)."""
        self.stop_event.set()
        self.thread.join(timeout_s)
        if self.thread.is_alive():
            log.warning("rules watcher did not stop within %.1f s", timeout_s)
