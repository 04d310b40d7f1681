"""Case selection by role: which cases a stage trains on, learns from unlabelled, or validates on.

Subsets name their ``role`` in params (``data.subsets.<name>.role``). Three groups matter to the
method, and every stage and notebook selects them through :func:`select_cases`, so one rule holds:

* ``"labelled"``: CT with labels (roles ``ct_labeled``, ``ct_pseudo``) whose label path is known;
* ``"unlabelled"``: MR without labels (``mr_lld``, ``mr_amos``, ``mr_unlabeled``);
* ``"validation"``: the labelled MR validation cases (``mr_val``) whose label path is known.

``sequence`` keeps only cases of that MR sequence (``T1W``, ``T2W``, ...); ``None`` keeps all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from flarelib.data.layout import Case

LABELLED_ROLES: tuple[str, ...] = ("ct_labeled", "ct_pseudo")
UNLABELLED_ROLES: tuple[str, ...] = ("mr_lld", "mr_amos", "mr_unlabeled")
VALIDATION_ROLES: tuple[str, ...] = ("mr_val",)

RoleGroup = Literal["labelled", "unlabelled", "validation"]
ROLE_GROUPS: dict[str, tuple[tuple[str, ...], bool]] = {
    # group: (roles, has a label)
    "labelled": (LABELLED_ROLES, True),
    "unlabelled": (UNLABELLED_ROLES, False),
    "validation": (VALIDATION_ROLES, True),
}


def select_cases(
    cases: Mapping[str, Iterable[Case]] | Iterable[Case],
    group: RoleGroup,
    *,
    sequence: str | None = None,
) -> list[Case]:
    """The cases of role ``group`` (see the module docstring), in discovery order.

    ``cases``: what :func:`flarelib.data.layout.discover` returns (subset -> cases) or any iterable
    of :class:`Case`. ``sequence``: keep only that MR sequence (None: every sequence).
    """
    if group not in ROLE_GROUPS:
        raise ValueError(f"unknown role group {group!r}; use one of {sorted(ROLE_GROUPS)}")
    roles, labelled = ROLE_GROUPS[group]
    flat = [c for cs in cases.values() for c in cs] if isinstance(cases, Mapping) else list(cases)
    return [
        c
        for c in flat
        if c.role in roles
        and (c.label is not None) == labelled
        and (sequence is None or c.sequence == sequence)
    ]
