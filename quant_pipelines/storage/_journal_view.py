"""Each study's trial list of a ``JournalStorage``, kept up to date from the logs it replays.

Optuna's ``JournalStorage.get_all_trials`` builds a study's trial list anew on every call, one
dictionary lookup per trial, and a study asks for it several times per trial (the pruner, the
sampler, the queue of waiting trials, the mirrors): a cost that grows with every trial.
:class:`TrialViews` keeps the list instead and replaces only the trials that the logs replayed
since the last call touched: the backend notes, for every log it hands out, the trial it
names or the study a trial was created in (:meth:`JournalReader.take_changes`), and the
current trial objects are read back by public ``JournalStorage`` lookups (``get_trial``,
``get_trial_id_from_study_id_trial_number``). The replay replaces a trial's object whenever a
log changes it and never changes one otherwise, so the list holds exactly the objects
``get_all_trials`` would return; anything else (a study created or deleted, a log it does not
know, a replay that started over) drops every list, rebuilt at its next use.
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Container
from typing import Protocol

from optuna.trial import FrozenTrial, TrialState


class _Changes(Protocol):
    def take_changes(self) -> tuple[bool, set[int], set[int]]: ...


class _Storage(Protocol):
    def get_study_directions(self, study_id: int) -> object: ...
    def get_trial(self, trial_id: int) -> FrozenTrial: ...
    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int: ...


#: Optuna's own listing: (study id) -> every trial of the study, not copied.
ListAll = Callable[[int], list[FrozenTrial]]


class TrialViews:
    """The trial lists of one storage's studies (module doc).

    Args:
        storage: The ``JournalStorage``.
        backend: Its backend, which notes what the logs it hands out change.
        list_all: Optuna's listing of a study's trials (``JournalStorage.get_all_trials``).
    """

    def __init__(self, storage: _Storage, backend: _Changes, list_all: ListAll) -> None:
        self._journal = storage
        self._noter = backend
        self._list_all = list_all
        self._lock = threading.Lock()
        self._lists: dict[int, list[FrozenTrial]] = {}
        self._where: dict[int, tuple[int, int]] = {}  # trial id -> (study id, number)

    def trials(
        self,
        study_id: int,
        *,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        """As ``JournalStorage.get_all_trials``: the study's trials by number, synced first.

        Raises:
            KeyError: No such study.
        """
        self._journal.get_study_directions(study_id)  # syncs; KeyError for an unknown study
        with self._lock:
            self._catch_up()
            trials = self._lists.get(study_id)
            if trials is None:
                trials = self._build(study_id)
            out = list(trials) if states is None else [t for t in trials if t.state in states]
        return copy.deepcopy(out) if deepcopy else out

    def _catch_up(self) -> None:
        """Applies the changes noted since the last call (the lookups may note more)."""
        while True:
            reset, created, changed = self._noter.take_changes()
            if reset:
                self._lists.clear()
                self._where.clear()
            if not (reset or created or changed):
                return
            for study_id in created:
                if study_id in self._lists:
                    self._extend(study_id)
            for trial_id in changed:
                where = self._where.get(trial_id)
                if where is not None:
                    study_id, number = where
                    self._lists[study_id][number] = self._journal.get_trial(trial_id)

    def _extend(self, study_id: int) -> None:
        """Appends the study's trials created since its list was last extended."""
        trials = self._lists[study_id]
        while True:
            number = len(trials)
            try:
                trial_id = self._journal.get_trial_id_from_study_id_trial_number(study_id, number)
            except KeyError:
                return
            self._where[trial_id] = (study_id, number)
            trials.append(self._journal.get_trial(trial_id))

    def _build(self, study_id: int) -> list[FrozenTrial]:
        """The study's list from Optuna's listing; changes noted meanwhile are applied later."""
        trials = list(self._list_all(study_id))
        for number in range(len(trials)):
            trial_id = self._journal.get_trial_id_from_study_id_trial_number(study_id, number)
            self._where[trial_id] = (study_id, number)
        self._lists[study_id] = trials
        return trials
