"""Prepare the benchmark datasets under a data root: download, verify, extract, lay out, check.

    python -m mmrl.data.prepare --root DATA [NAME ...]      # no NAME: every dataset that can be fetched
    python -m mmrl.data.prepare --root DATA --list          # files, sizes, checksums and state
    python -m mmrl.data.prepare --root DATA imagenet --from /path/to/ILSVRC2012 [--copy]
    python -m mmrl.data.prepare --root DATA --sources my_mirror.yaml caltech101

Where each file comes from and where it goes is data (``datasets/sources.yaml``, extended or
replaced by ``--sources FILE`` and ``MMRL_DATA_SOURCES``; see :mod:`mmrl.data.sources`); how a
file is got safely is :mod:`mmrl.data.fetch`. Each dataset ends with the check of
``python -m mmrl.data.check`` and its ``[present]`` line. A dataset that fails (a dead link, an
HTML page instead of the archive, a checksum mismatch) is reported in one line and the others
go on; the exit code is 1 when any failed.
"""
import argparse
import os
import sys
from typing import Dict, List, Optional, Sequence

from mmrl.cli import UserError, run_main
from mmrl.data.benchmark import DATASETS_DOC
from mmrl.data.fetch import DOWNLOADS, FetchError, extract, fetch, human, partial_bytes, place, placed
from mmrl.data.sources import SOURCES_ENV, DatasetSource, load_sources


def _aliases(sources: Dict[str, DatasetSource]) -> Dict[str, str]:
    """Every spelling of a dataset the command accepts: its key (the config file's stem) and its
    registered class name, in any case."""
    out = {}
    for key, spec in sources.items():
        for alias in (key, spec.dataset):
            out[alias.lower()] = key
    return out


def select(names: Sequence[str], sources: Dict[str, DatasetSource]) -> List[str]:
    from mmrl.dassl.utils.registry import closest_name

    aliases = _aliases(sources)
    chosen = []
    for name in names:
        key = aliases.get(name.lower())
        if key is None:
            raise UserError(f"unknown dataset {name!r}; did you mean {closest_name(name.lower(), list(sources))!r}? "
                            f"Choose from: {', '.join(sources)}")
        if key not in chosen:
            chosen.append(key)
    return chosen


def downloads_dir(root: str) -> str:
    """``$DATA/.downloads``: every file in flight, and the verified plain files."""
    return os.path.join(os.path.abspath(os.path.expanduser(root)), DOWNLOADS)


def _cfg(root: str):
    from mmrl.dassl.config import get_cfg_default

    cfg = get_cfg_default()
    cfg.DATASET.ROOT = root
    return cfg


def _dataset_class(spec: DatasetSource) -> type:
    from mmrl.data.check import checkable_datasets

    classes = checkable_datasets()
    if spec.dataset not in classes:
        raise UserError(f"{spec.key}: the sources name the dataset class {spec.dataset!r}, which is not registered "
                        f"(registered: {', '.join(sorted(classes))})")
    return classes[spec.dataset]


def prepare_dataset(spec: DatasetSource, root: str, quiet: bool = False, keep_archives: bool = False,
                    source: Optional[str] = None, copy: bool = False, devkit: Optional[str] = None) -> str:
    """Get, verify and lay out every file of one dataset, then check it; returns the checker's
    line. Raises UserError (FetchError) naming what failed."""
    from mmrl.data.check import check_dataset

    cls = _dataset_class(spec)
    cfg = _cfg(root)
    dataset_dir = cls.folder(cfg)
    downloads = downloads_dir(root)
    print(f"== {spec.key} ({spec.dataset}) -> {dataset_dir}", flush=True)
    if spec.needs_from:
        from mmrl.data.ilsvrc import build_images

        if not source and not os.path.exists(os.path.join(dataset_dir, "images")):
            raise UserError(_needs_from(spec, root))
        if source:
            os.makedirs(dataset_dir, exist_ok=True)
            print(f"  {build_images(source, dataset_dir, copy=copy, devkit=devkit)}", flush=True)
    for src in spec.files:
        if placed(src, dataset_dir, downloads):
            print(f"  {src.name}: in place", flush=True)
            continue
        path = fetch(src, downloads, quiet=quiet)
        if src.is_archive:
            pieces = extract(src, path, dataset_dir, downloads)
            print(f"  {src.name}: extracted {', '.join(pieces)}", flush=True)
            if not keep_archives:
                os.remove(path)
        else:
            place(src, path, dataset_dir)
            print(f"  {src.name}: placed as {src.place}", flush=True)
    report = check_dataset(cls, cfg)
    if report.status != "present":
        raise UserError(f"{spec.key}: every file is in place but the check says: {report.line()}")
    return report.line()


def _needs_from(spec: DatasetSource, root: str) -> str:
    return (f"{spec.key}: ImageNet cannot be downloaded for you (its licence): get ILSVRC2012 from "
            f"https://image-net.org/download.php, extract train/ and val/, then run "
            f"python -m mmrl.data.prepare --root {root} {spec.key} --from /path/to/ILSVRC2012 "
            f"(symbolic links; --copy for hard links), or see {DATASETS_DOC}")


def file_state(spec: DatasetSource, root: str) -> List[str]:
    """One ``--list`` line per file: name, size, how it is verified, where it stands."""
    cfg = _cfg(root)
    dataset_dir = _dataset_class(spec).folder(cfg)
    downloads = downloads_dir(root)
    lines = []
    for src in spec.files:
        if placed(src, dataset_dir, downloads):
            state = "placed"
        elif os.path.isfile(os.path.join(downloads, src.name)):
            state = "downloaded"
        elif partial_bytes(downloads, src.name):
            got = partial_bytes(downloads, src.name)
            state = f"partial ({human(got)}" + (f" of {human(src.size)})" if src.size else ")")
        else:
            state = "missing"
        lines.append(f"  {src.name:<40} {human(src.size):>10}  {src.verification:<60}  {state}")
    return lines


def dataset_state(spec: DatasetSource, root: str) -> str:
    cls = _dataset_class(spec)
    cfg = _cfg(root)
    if all(os.path.exists(p) for p in cls.required_paths(cfg)):
        return "present"
    downloads = downloads_dir(root)
    started = os.path.isdir(cls.folder(cfg)) or any(
        os.path.exists(os.path.join(downloads, f.name)) or partial_bytes(downloads, f.name) for f in spec.files)
    return "partial" if started else "missing"


def list_sources(sources: Dict[str, DatasetSource], keys: Sequence[str], root: str) -> None:
    downloads = downloads_dir(root)
    todo: Dict[str, Optional[int]] = {}
    for key in keys:
        spec = sources[key]
        folder = _dataset_class(spec).folder(_cfg(root))
        note = " (images from a licensed copy: --from DIR)" if spec.needs_from else ""
        print(f"{key} ({spec.dataset}, {folder}): {dataset_state(spec, root)}{note}")
        for line in file_state(spec, root):
            print(line)
        todo.update({f.name: f.size for f in spec.files if not placed(f, folder, downloads)})
    known = sum(size for size in todo.values() if size is not None)
    unknown = sum(size is None for size in todo.values())
    files = f"{len(todo)} file" + ("s" if len(todo) != 1 else "")
    print(f"To get: {files}, {human(known)}" + (f" plus {unknown} of unpublished size" if unknown else ""))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m mmrl.data.prepare",
        description="Download, verify, extract and lay out the benchmark datasets under a data root, "
                    "then check each as python -m mmrl.data.check does.",
    )
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help="datasets to prepare (e.g. caltech101 or Caltech101; default: every one that can be "
                             "fetched, ImageNet only with --from)")
    parser.add_argument("--root", required=True, help="the data root (DATASET.ROOT)")
    parser.add_argument("--list", action="store_true", help="list every dataset's files, sizes, checksums and state")
    parser.add_argument("--sources", action="append", default=[], metavar="FILE",
                        help=f"a sources YAML extending (or, with replace: true, replacing) datasets/sources.yaml; "
                             f"may be repeated (also {SOURCES_ENV}, os.pathsep-separated)")
    parser.add_argument("--from", dest="source", metavar="DIR",
                        help="ImageNet: an extracted ILSVRC2012 copy holding train/ and val/")
    parser.add_argument("--copy", action="store_true", help="ImageNet --from: hard links instead of symbolic links")
    parser.add_argument("--devkit", metavar="PATH",
                        help="ImageNet --from with a flat val/: ILSVRC2012_devkit_t12(.tar.gz) (default: in DIR)")
    parser.add_argument("--keep-archives", action="store_true",
                        help=f"keep the downloaded archives in DATA/{DOWNLOADS}/ after extracting them")
    parser.add_argument("--quiet", action="store_true", help="no download progress bars")
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    sources = load_sources(args.sources)
    keys = select(args.names, sources) if args.names else list(sources)
    if args.list:
        list_sources(sources, keys, args.root)
        return 0
    if args.source and not any(sources[k].needs_from for k in keys):
        raise UserError("--from builds ImageNet from a licensed copy: name imagenet among the datasets")
    os.makedirs(args.root, exist_ok=True)
    failed, skipped, done = [], [], []
    for key in keys:
        spec = sources[key]
        if spec.needs_from and not args.names and not args.source:
            skipped.append(key)
            print(f"[skipped] {_needs_from(spec, args.root)}", flush=True)
            continue
        try:
            print(prepare_dataset(spec, args.root, quiet=args.quiet, keep_archives=args.keep_archives,
                                  source=args.source if spec.needs_from else None, copy=args.copy,
                                  devkit=args.devkit), flush=True)
            done.append(key)
        except (UserError, OSError) as err:
            message = str(err) if str(err).startswith(f"{key}:") else f"{key}: {err}"
            print(f"[failed] {' '.join(message.split())}", file=sys.stderr, flush=True)
            failed.append(key)
    summary = f"{len(done)} of {len(keys)} datasets prepared under {os.path.abspath(args.root)}"
    if skipped:
        summary += f"; skipped: {', '.join(skipped)}"
    if failed:
        summary += f"; failed: {', '.join(failed)} (see the [failed] lines; manual steps in {DATASETS_DOC})"
    print(summary, flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(run_main(main))
