"""Datum, DatasetBase and few-shot sampling with Dassl's public behaviour.

The few-shot draw must reproduce the lineage's subsets bit for bit: it uses the
global ``random`` module exactly as Dassl does (same grouping order, same calls),
so a run seeded with ``random.seed(s)`` selects the images the published
numbers were obtained with.
"""
import copyreg
import os
import os.path as osp
import pickle
import random
from collections import defaultdict
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

__all__ = [
    "Datum",
    "DatasetBase",
    "generate_fewshot_dataset",
    "split_dataset_by_label",
    "dump_datum_pickle",
    "load_pickle",
    "reroot_datums",
]


class Datum:
    """One labelled image.

    Attributes are stored as ``_impath``, ``_label``, ``_domain`` and
    ``_classname`` (no ``__slots__``) so that pickles written by Dassl, which
    restore exactly these four names, load into this class.
    """

    def __init__(self, impath: str = "", label: int = 0, domain: int = 0, classname: str = "") -> None:
        if not isinstance(impath, str):
            raise TypeError(f"Datum impath must be a str, got {type(impath).__name__}: {impath!r}")
        # A clear error instead of Dassl's warning followed by a bare assertion.
        if not osp.isfile(impath):
            raise FileNotFoundError(
                f'No file found at "{impath}". Check DATASET.ROOT and that the dataset was extracted '
                "completely (see DATASETS.md)."
            )
        self._impath = impath
        self._label = label
        self._domain = domain
        self._classname = classname

    @property
    def impath(self) -> str:
        return self._impath

    @property
    def label(self) -> int:
        return self._label

    @property
    def domain(self) -> int:
        return self._domain

    @property
    def classname(self) -> str:
        return self._classname

    def __repr__(self) -> str:
        return (
            f"Datum(impath={self._impath!r}, label={self._label}, "
            f"domain={self._domain}, classname={self._classname!r})"
        )


def split_dataset_by_label(data_source: Sequence[Datum]) -> Dict[int, List[Datum]]:
    """Group items by label; groups are in first-appearance order, items keep source order."""
    output: Dict[int, List[Datum]] = defaultdict(list)
    for item in data_source:
        output[item.label].append(item)
    return output


def generate_fewshot_dataset(
    *data_sources: Sequence[Datum], num_shots: int = -1, repeat: bool = False
) -> Union[Sequence[Datum], List[List[Datum]], Tuple[Sequence[Datum], ...]]:
    """Draw ``num_shots`` items per label from each source with the global ``random``.

    With one source a single list is returned, otherwise a list of lists (the
    inputs themselves, as a tuple, when ``num_shots < 1``). A label with fewer
    items than ``num_shots`` keeps its whole group, or is drawn with replacement
    when ``repeat`` is set.
    """
    if num_shots < 1:
        if len(data_sources) == 1:
            return data_sources[0]
        return data_sources

    print(f"Creating a {num_shots}-shot dataset")
    output: List[List[Datum]] = []
    for data_source in data_sources:
        picked: List[Datum] = []
        for items in split_dataset_by_label(data_source).values():
            if len(items) >= num_shots:
                picked.extend(random.sample(items, num_shots))
            elif repeat:
                picked.extend(random.choices(items, k=num_shots))
            else:
                picked.extend(items)
        output.append(picked)
        if not repeat:
            report_short_classes(picked, num_shots)

    if len(output) == 1:
        return output[0]
    return output


def report_short_classes(items: Sequence[Datum], num_shots: int, what: str = "") -> List[Tuple[str, int]]:
    """Say which classes of a ``num_shots``-shot draw hold fewer images (the lineage keeps all a
    class has without a word); returns ``(classname, count)`` for each."""
    counts: Dict[int, int] = defaultdict(int)
    names: Dict[int, str] = {}
    for item in items:
        counts[item.label] += 1
        names.setdefault(item.label, item.classname)
    short = [(names[label], n) for label, n in counts.items() if n < num_shots]
    if short:
        listed = ", ".join(f"{name} ({n})" for name, n in short[:20])
        more = f", ... ({len(short) - 20} more)" if len(short) > 20 else ""
        where = f" of {what}" if what else ""
        print(f"{len(short)} of {len(counts)} classes{where} have fewer than {num_shots} images and use all "
              f"they have: {listed}{more}")
    return short


# Module paths under which Dassl pickled its Datum; caches written by the
# lineage name them, so they are mapped onto this module when loading.
DASSL_DATUM_MODULE = "dassl.data.datasets.base_dataset"
_LINEAGE_MODULES = {
    DASSL_DATUM_MODULE: __name__,
    "dassl.data.datasets": __name__,
}
# Pickles of Datum lists name Dassl's class, so Dassl's own code (plain pickle.load) reads the
# caches this project writes on a data root both share; protocol 4 is readable from Python 3.4 on.
DATUM_PICKLE_PROTOCOL = 4
# Beside Dassl's four attributes, each written Datum carries its path relative to the dataset
# folder, so a copied or moved data root reads its own images (Dassl ignores the extra attribute).
_RELPATH = "_relpath"


class _LineageUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if module in _LINEAGE_MODULES and name == "Datum":
            return Datum
        return super().find_class(module, name)


class _DasslPickler(pickle._Pickler):  # the Python pickler: the C one cannot name another module
    def __init__(self, file: Any, root: str) -> None:
        super().__init__(file, protocol=DATUM_PICKLE_PROTOCOL)
        self.root = root

    def save_global(self, obj: Any, name: Optional[str] = None) -> None:
        if obj is Datum:
            self.write(pickle.GLOBAL + f"{DASSL_DATUM_MODULE}\nDatum\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is not Datum:
            return NotImplemented
        state = {k: obj.__dict__[k] for k in ("_impath", "_label", "_domain", "_classname")}
        rel = osp.relpath(obj.impath, self.root) if self.root else ""
        if rel and not rel.startswith(".."):
            state[_RELPATH] = rel
        return copyreg.__newobj__, (Datum,), state


def dump_datum_pickle(data: Any, file: Any, root: str) -> None:
    """Pickle ``data`` (dicts and lists of Datum) to a binary ``file`` in the lineage's class path,
    each image path also stored relative to the dataset folder ``root``."""
    _DasslPickler(file, osp.abspath(root)).dump(data)


def _datums(data: Any) -> List[Datum]:
    if isinstance(data, Datum):
        return [data]
    if isinstance(data, dict):
        return [d for v in data.values() for d in _datums(v)]
    if isinstance(data, (list, tuple)):
        return [d for v in data for d in _datums(v)]
    return []


def _old_prefix(impath: str, root: str) -> Optional[str]:
    """The folder that played ``root``'s part when ``impath`` was written: the shortest tail of
    ``impath`` that exists under ``root`` tells it."""
    parts = impath.split(os.sep)
    for k in range(1, len(parts)):
        if osp.exists(osp.join(root, *parts[k:])):
            return os.sep.join(parts[:k])
    return None


def reroot_datums(data: Any, root: str, source: str = "") -> None:
    """Point every Datum of ``data`` at the images under the dataset folder ``root``: from its
    relative path when it has one, else by replacing the absolute prefix it was written under
    (caches of the lineage, or of a data root that was copied or moved)."""
    root = osp.abspath(root)
    items = _datums(data)
    legacy = []
    for item in items:
        rel = item.__dict__.pop(_RELPATH, None)
        if rel is not None:
            item._impath = osp.join(root, rel)
        else:
            legacy.append(item)
    if not legacy or legacy[0].impath.startswith(root + os.sep):
        return
    old = _old_prefix(legacy[0].impath, root)
    if old is None or old == root:
        return
    for item in legacy:
        if item.impath.startswith(old + os.sep):
            item._impath = root + item.impath[len(old):]
    print(f"Image paths of {source or 'the cache'} were written under {old}: reading them from {root}")


def load_pickle(path: str, root: Optional[str] = None) -> Any:
    """Load a pickle that may hold Datum objects written by this project or by Dassl; with
    ``root`` (the dataset folder), their image paths are re-rooted there (see reroot_datums)."""
    try:
        with open(path, "rb") as f:
            data = _LineageUnpickler(f).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ModuleNotFoundError, ValueError) as e:
        raise ValueError(
            f"Cannot read pickle {path}: {e}. The file is corrupt or was written by an incompatible "
            "version; delete it and it will be recreated."
        ) from e
    if root is not None:
        reroot_datums(data, root, source=path)
    return data


def dataset_path(cfg: Any, dataset_dir: str) -> str:
    """``<abspath(expanduser(DATASET.ROOT))>/<dataset_dir>``."""
    return osp.join(osp.abspath(osp.expanduser(cfg.DATASET.ROOT)), dataset_dir)


class DatasetBase:
    """A dataset: lists of Datum for train_x, train_u, val and test.

    ``num_classes``, ``lab2cname`` and ``classnames`` are derived from train_x.
    ``template`` is the prompt of the dataset's classes (``{}`` is the class name), which CLIP
    trainers format class names through; each registered dataset must declare its own.
    """

    dataset_dir: str = ""
    template: Optional[str] = None

    @classmethod
    def folder(cls, cfg: Any) -> str:
        """The dataset's folder: ``<DATASET.ROOT>/<dataset_dir>`` unless a dataset says otherwise."""
        return dataset_path(cfg, cls.dataset_dir)

    def __init__(
        self,
        train_x: Optional[List[Datum]] = None,
        train_u: Optional[List[Datum]] = None,
        val: Optional[List[Datum]] = None,
        test: Optional[List[Datum]] = None,
    ) -> None:
        self._train_x = train_x
        self._train_u = train_u
        self._val = val
        self._test = test
        self._num_classes = self.get_num_classes(train_x)
        self._lab2cname, self._classnames = self.get_lab2cname(train_x)

    @property
    def train_x(self) -> Optional[List[Datum]]:
        return self._train_x

    @property
    def train_u(self) -> Optional[List[Datum]]:
        return self._train_u

    @property
    def val(self) -> Optional[List[Datum]]:
        return self._val

    @property
    def test(self) -> Optional[List[Datum]]:
        return self._test

    @property
    def lab2cname(self) -> Dict[int, str]:
        return self._lab2cname

    @property
    def classnames(self) -> List[str]:
        return self._classnames

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @staticmethod
    def get_num_classes(data_source: Sequence[Datum]) -> int:
        """max(label) + 1, so that labels index the classifier directly."""
        if not data_source:
            raise ValueError("Cannot count classes of an empty data source (train_x is empty)")
        return max(item.label for item in data_source) + 1

    @staticmethod
    def get_lab2cname(data_source: Sequence[Datum]) -> Tuple[Dict[int, str], List[str]]:
        """{label: classname} and the classnames ordered by label."""
        mapping: Dict[int, str] = {}
        for item in data_source:
            mapping.setdefault(item.label, item.classname)
        labels = sorted(mapping)
        mapping = {label: mapping[label] for label in labels}
        return mapping, [mapping[label] for label in labels]

    def generate_fewshot_dataset(self, *data_sources: Sequence[Datum], num_shots: int = -1, repeat: bool = False):
        return generate_fewshot_dataset(*data_sources, num_shots=num_shots, repeat=repeat)

    def split_dataset_by_label(self, data_source: Sequence[Datum]) -> Dict[int, List[Datum]]:
        return split_dataset_by_label(data_source)


def _lineage_module_names() -> None:
    """Make Dassl's module path of Datum resolve to this Datum when no real Dassl is installed.

    Dataset code of the lineage ported onto this engine reads and writes its few-shot caches with
    plain ``pickle``, which names a class by its module: a cache written by Dassl says
    ``dassl.data.datasets.base_dataset.Datum``, and one written here must say the same for Dassl
    to read it. So the Datum class carries Dassl's module name, and that name (and its parent
    packages) is registered as a stand-in module holding only Datum: plain ``pickle.load`` then
    finds this class, and ``pickle.dump`` can verify the name it writes. The stand-ins have no
    search path, so ``import dassl.engine`` still fails as it would without Dassl.
    """
    import importlib.util
    import sys
    import types

    if DASSL_DATUM_MODULE not in sys.modules:
        try:
            if importlib.util.find_spec("dassl") is not None:
                return  # the real Dassl: its own Datum, and pickles name ours by our module
        except (ImportError, ValueError):
            pass
        parts = DASSL_DATUM_MODULE.split(".")
        parent = None
        for depth in range(1, len(parts) + 1):
            name = ".".join(parts[:depth])
            module = types.ModuleType(name, "Stand-in for Dassl's module path in pickled few-shot caches "
                                            f"(see {__name__})")
            if depth < len(parts):
                module.__path__ = []  # a package with no submodules to find
            module.Datum = Datum
            sys.modules[name] = module
            if parent is not None:
                setattr(parent, parts[depth - 1], module)
            parent = module
    if getattr(sys.modules[DASSL_DATUM_MODULE], "Datum", None) is Datum:
        Datum.__module__ = DASSL_DATUM_MODULE


_lineage_module_names()
