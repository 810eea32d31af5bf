"""A read-only view of an Optuna storage, for viewers such as optuna-dashboard.

:class:`ReadOnlyStorage` delegates every read of :class:`optuna.storages.BaseStorage` to the
wrapped storage and refuses every write with :class:`ReadOnlyStorageError`, so a viewer can
neither create, rename nor delete studies, nor change a trial, an attribute or a note.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from typing import Any

from optuna.distributions import BaseDistribution
from optuna.storages import BaseStorage
from optuna.study._frozen import FrozenStudy
from optuna.study._study_direction import StudyDirection
from optuna.trial import FrozenTrial, TrialState


class ReadOnlyStorageError(PermissionError):
    """A write was attempted through a read-only storage."""


class ReadOnlyStorage(BaseStorage):
    """Wraps an Optuna storage: reads pass through, every write raises.

    Args:
        inner: The storage to read from (e.g. the MongoDB journal of ``optuna_storage``).
    """

    def __init__(self, inner: BaseStorage) -> None:
        self._inner = inner

    @property
    def inner(self) -> BaseStorage:
        """The wrapped storage."""
        return self._inner

    def __repr__(self) -> str:
        return f"ReadOnlyStorage({self._inner!r})"

    @staticmethod
    def _refuse(operation: str) -> ReadOnlyStorageError:
        return ReadOnlyStorageError(
            f"{operation} refused: this Optuna storage is read-only (a viewer may not change "
            "studies, trials, attributes or notes)"
        )

    # -- writes: all refused ---------------------------------------------------------------

    def create_new_study(
        self, directions: Sequence[StudyDirection], study_name: str | None = None
    ) -> int:
        """Refused."""
        raise self._refuse("create_new_study")

    def delete_study(self, study_id: int) -> None:
        """Refused."""
        raise self._refuse("delete_study")

    def set_study_user_attr(self, study_id: int, key: str, value: Any) -> None:
        """Refused."""
        raise self._refuse("set_study_user_attr")

    def set_study_system_attr(self, study_id: int, key: str, value: Any) -> None:
        """Refused."""
        raise self._refuse("set_study_system_attr")

    def create_new_trial(self, study_id: int, template_trial: FrozenTrial | None = None) -> int:
        """Refused."""
        raise self._refuse("create_new_trial")

    def set_trial_param(
        self,
        trial_id: int,
        param_name: str,
        param_value_internal: float,
        distribution: BaseDistribution,
    ) -> None:
        """Refused."""
        raise self._refuse("set_trial_param")

    def set_trial_state_values(
        self, trial_id: int, state: TrialState, values: Sequence[float] | None = None
    ) -> bool:
        """Refused."""
        raise self._refuse("set_trial_state_values")

    def set_trial_intermediate_value(
        self, trial_id: int, step: int, intermediate_value: float
    ) -> None:
        """Refused."""
        raise self._refuse("set_trial_intermediate_value")

    def set_trial_user_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Refused."""
        raise self._refuse("set_trial_user_attr")

    def set_trial_system_attr(self, trial_id: int, key: str, value: Any) -> None:
        """Refused."""
        raise self._refuse("set_trial_system_attr")

    def check_trial_is_updatable(self, trial_id: int, trial_state: TrialState) -> None:
        """Refused: no trial is updatable through a read-only storage."""
        raise self._refuse("updating a trial")

    # -- reads: delegated ------------------------------------------------------------------

    def get_study_id_from_name(self, study_name: str) -> int:
        """Delegated."""
        return self._inner.get_study_id_from_name(study_name)

    def get_study_name_from_id(self, study_id: int) -> str:
        """Delegated."""
        return self._inner.get_study_name_from_id(study_id)

    def get_study_directions(self, study_id: int) -> list[StudyDirection]:
        """Delegated."""
        return self._inner.get_study_directions(study_id)

    def get_study_user_attrs(self, study_id: int) -> dict[str, Any]:
        """Delegated."""
        return self._inner.get_study_user_attrs(study_id)

    def get_study_system_attrs(self, study_id: int) -> dict[str, Any]:
        """Delegated."""
        return self._inner.get_study_system_attrs(study_id)

    def get_all_studies(self) -> list[FrozenStudy]:
        """Delegated."""
        return self._inner.get_all_studies()

    def get_trial_id_from_study_id_trial_number(self, study_id: int, trial_number: int) -> int:
        """Delegated."""
        return self._inner.get_trial_id_from_study_id_trial_number(study_id, trial_number)

    def get_trial_number_from_id(self, trial_id: int) -> int:
        """Delegated."""
        return self._inner.get_trial_number_from_id(trial_id)

    def get_trial_param(self, trial_id: int, param_name: str) -> float:
        """Delegated."""
        return self._inner.get_trial_param(trial_id, param_name)

    def get_trial(self, trial_id: int) -> FrozenTrial:
        """Delegated."""
        return self._inner.get_trial(trial_id)

    def get_all_trials(
        self,
        study_id: int,
        deepcopy: bool = True,
        states: Container[TrialState] | None = None,
    ) -> list[FrozenTrial]:
        """Delegated."""
        return self._inner.get_all_trials(study_id, deepcopy=deepcopy, states=states)

    def get_n_trials(
        self, study_id: int, state: tuple[TrialState, ...] | TrialState | None = None
    ) -> int:
        """Delegated."""
        return self._inner.get_n_trials(study_id, state)

    def get_best_trial(self, study_id: int) -> FrozenTrial:
        """Delegated."""
        return self._inner.get_best_trial(study_id)

    def get_trial_params(self, trial_id: int) -> dict[str, Any]:
        """Delegated."""
        return self._inner.get_trial_params(trial_id)

    def get_trial_user_attrs(self, trial_id: int) -> dict[str, Any]:
        """Delegated."""
        return self._inner.get_trial_user_attrs(trial_id)

    def get_trial_system_attrs(self, trial_id: int) -> dict[str, Any]:
        """Delegated."""
        return self._inner.get_trial_system_attrs(trial_id)

    def remove_session(self) -> None:
        """Delegated (closes connections; changes no data)."""
        self._inner.remove_session()


#: The methods of ``BaseStorage`` that change data; all raise on a :class:`ReadOnlyStorage`.
WRITE_METHODS: tuple[str, ...] = (
    "create_new_study",
    "delete_study",
    "set_study_user_attr",
    "set_study_system_attr",
    "create_new_trial",
    "set_trial_param",
    "set_trial_state_values",
    "set_trial_intermediate_value",
    "set_trial_user_attr",
    "set_trial_system_attr",
)
