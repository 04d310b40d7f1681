"""The 13 FLARE24 organs, the 8 MR sequences, and per-dataset label maps.

Label maps come from a manifest in the format of ``../shared/data/dataset.json``: each dataset maps
its own label ids to FLARE ids (``label_to_flare``) and lists the FLARE organs it does NOT annotate
(``flare_not_annotated``). Unannotated organs are carried as a set and are never background: the
loss and the metrics ignore them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np

#: FLARE22/24 label ids (F).
ORGANS: dict[int, str] = {
    1: "liver",
    2: "right kidney",
    3: "spleen",
    4: "pancreas",
    5: "aorta",
    6: "inferior vena cava",
    7: "right adrenal gland",
    8: "left adrenal gland",
    9: "gallbladder",
    10: "esophagus",
    11: "stomach",
    12: "duodenum",
    13: "left kidney",
}
ORGAN_IDS: tuple[int, ...] = tuple(ORGANS)
#: FLARE id of each organ by its name in :data:`ORGANS` (``ORGAN_BY_NAME["liver"] == 1``).
ORGAN_BY_NAME: dict[str, int] = {name: organ for organ, name in ORGANS.items()}
NUM_CLASSES = 14  # background + 13 organs

#: Short names used in tables (the paper's Table 4 order is the id order).
SHORT_NAMES: dict[int, str] = {
    1: "Liver",
    2: "RK",
    3: "Spleen",
    4: "Pancreas",
    5: "Aorta",
    6: "IVC",
    7: "RAG",
    8: "LAG",
    9: "Gallbladder",
    10: "Esophagus",
    11: "Stomach",
    12: "Duodenum",
    13: "LK",
}

#: Left/right paired organs: a left/right mirror of the image must swap these ids.
LR_PAIRS: tuple[tuple[int, int], ...] = ((2, 13), (7, 8))

#: MR sequences: short name -> LLD-MMR file tag (``<patient>_<tag>``).
SEQUENCES: dict[str, str] = {
    "T1W": "C-pre",
    "EAP": "C--A",
    "PVP": "C--V",
    "DP": "C--Delay",
    "T2W": "T2WI",
    "DWI": "DWI",
    "IP": "InPhase",
    "OP": "OutPhase",
}
SEQUENCE_BY_TAG: dict[str, str] = {tag: name for name, tag in SEQUENCES.items()}


def lr_swap_lut() -> np.ndarray:
    """Lookup table (uint8, length ``NUM_CLASSES``) that swaps the left/right paired ids."""
    lut = np.arange(NUM_CLASSES, dtype=np.uint8)
    for a, b in LR_PAIRS:
        lut[a], lut[b] = b, a
    return lut


@dataclass(frozen=True)
class LabelMap:
    """How one dataset's label ids become FLARE ids.

    ``to_flare`` maps every source id the dataset may contain to a FLARE id (0 = background);
    ``not_annotated`` is the set of FLARE organs the dataset never labels (ignore, never background).
    """

    name: str
    to_flare: Mapping[int, int]
    not_annotated: frozenset[int] = field(default_factory=frozenset)

    @classmethod
    def identity(cls, name: str = "flare", not_annotated: Iterable[int] = ()) -> LabelMap:
        return cls(name, {i: i for i in range(NUM_CLASSES)}, frozenset(not_annotated))

    @property
    def annotated(self) -> frozenset[int]:
        """FLARE organ ids this dataset annotates."""
        return frozenset(ORGAN_IDS) - self.not_annotated

    @property
    def source_ids(self) -> frozenset[int]:
        return frozenset(self.to_flare)

    def lut(self) -> np.ndarray:
        """A uint8 lookup table over source ids 0..max; unknown ids map to 255."""
        lut = np.full(max(self.to_flare) + 1, 255, dtype=np.uint8)
        for src, dst in self.to_flare.items():
            lut[src] = dst
        return lut

    def unknown_ids(self, label: np.ndarray) -> list[int]:
        """Source ids present in ``label`` that this map does not know, sorted."""
        present = np.unique(label)
        return sorted(int(v) for v in present if int(v) not in self.to_flare)

    def apply(self, label: np.ndarray) -> np.ndarray:
        """Map a source label array to FLARE ids (uint8). Raises ValueError on unknown ids."""
        unknown = self.unknown_ids(label)
        if unknown:
            raise ValueError(
                f"label ids {unknown} are not in the '{self.name}' label map (known: {sorted(self.to_flare)})"
            )
        return self.lut()[label.astype(np.int64, copy=False)]

    def annotated_mask(self) -> np.ndarray:
        """Boolean vector over classes 0..13: True where the class is supervised (background too)."""
        mask = np.ones(NUM_CLASSES, dtype=bool)
        for organ in self.not_annotated:
            mask[organ] = False
        return mask


def label_map_from_manifest_entry(name: str, entry: Mapping, variant: str | None = None) -> LabelMap:
    """Build a :class:`LabelMap` from one ``datasets[name]`` entry of a dataset.json manifest.

    ``label_to_flare`` is either ``{src: flare}`` or, for datasets with several label sets
    (TotalSegmentator ``total`` / ``total_mr``), ``{variant: {src: flare}}``; then ``variant`` picks
    one. Source ids that the manifest sends to background via "all ids not listed" are handled by
    callers that pass ``variant``: for those, unlisted ids map to 0.
    """
    raw = entry["label_to_flare"]
    first = next(iter(raw.values()))
    if isinstance(first, Mapping):
        if variant is None:
            raise ValueError(f"dataset '{name}' has label sets {sorted(raw)}; name one as variant")
        table = {int(k): int(v) for k, v in raw[variant].items()}
        table.setdefault(0, 0)
        # "all ids not listed" go to background: cover the ids a label file can hold (uint8/int16).
        full = dict.fromkeys(range(256), 0)
        full.update(table)
        table = full
        name = f"{name}:{variant}"
    else:
        table = {int(k): int(v) for k, v in raw.items()}
    bad = sorted(v for v in table.values() if v not in range(NUM_CLASSES))
    if bad:
        raise ValueError(f"dataset '{name}': label_to_flare targets {bad} are not FLARE ids 0..13")
    not_ann = frozenset(int(v) for v in entry.get("flare_not_annotated", []))
    return LabelMap(name, table, not_ann)
