"""`python -m mmrl.data.prepare` against a real HTTP server on 127.0.0.1 serving miniature archives
in the real archive layouts (tests/archives.py): the prepared tree, reruns, bad links and
archives, kills, the listing."""
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from typing import Dict, List

import pytest
import yaml

from mmrl.cli import UserError
from mmrl.data import check
from mmrl.data.prepare import main
from mmrl.data.sources import load_sources
from tests.archives import LAYOUTS, VAL_LABELS, WNIDS, MirrorServer, build_mirror, md5

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KEYS = list(LAYOUTS)


def tree(folder: str, skip=("split_fewshot", "preprocessed.pkl")) -> Dict[str, str]:
    """Every file under ``folder`` (by relative path) with the md5 of its bytes; folders as None."""
    out = {}
    for base, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in skip)
        rel = os.path.relpath(base, folder)
        if rel != ".":
            out[rel + "/"] = None
        for name in files:
            if name not in skip:
                out[os.path.normpath(os.path.join(rel, name))] = md5(os.path.join(base, name))
    return out


def write_sources(path: str, mirror: str, datasets: Dict[str, List[dict]]) -> str:
    with open(path, "w") as f:
        yaml.safe_dump({"mirror": mirror, "datasets": {k: {"files": v} for k, v in datasets.items()}}, f)
    return path


def run_prepare(capsys, *argv: str) -> subprocess.CompletedProcess:
    """The command's main() in this process (a subprocess only where a test kills it)."""
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return subprocess.CompletedProcess(argv, code, captured.out, captured.err)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory):
    os.environ.setdefault("NO_PROXY", "127.0.0.1")
    os.environ.setdefault("no_proxy", "127.0.0.1")
    work = str(tmp_path_factory.mktemp("mirror"))
    with MirrorServer(os.path.join(work, "files")) as server:
        paths = build_mirror(work, base_url=server.url)
        yield dict(paths, server=server, work=work)


@pytest.fixture(scope="module")
def prepared(mirror, tmp_path_factory):
    """All 15 datasets prepared from the mirror in one run (ImageNet from the ILSVRC2012 copy)."""
    root = str(tmp_path_factory.mktemp("data"))
    code = main(["--root", root, "--sources", mirror["sources"], "--from", mirror["ilsvrc"], "--quiet", *KEYS])
    assert code == 0
    return root


def test_every_dataset_passes_the_data_root_check(prepared, capsys):
    capsys.readouterr()
    assert check.main(["--root", prepared]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == "15 of 15 datasets present. Download instructions: DATASETS.md"
    assert "[present] ImageNet: train 6 images / 2 classes, val 4 images / 2 classes, test 4 images / 2 classes" in lines


def test_the_prepared_tree_is_the_tree_the_loaders_read(prepared, mirror):
    for key, (folder, _, _) in LAYOUTS.items():
        expected = tree(os.path.join(mirror["expected"], folder))
        got = tree(os.path.join(prepared, folder))
        if key == "imagenet":
            got = {k: v for k, v in got.items() if not k.startswith("images")}
        assert got == expected, key
    # What the archives hold beside the dataset stays out of it.
    assert not os.path.exists(os.path.join(prepared, "food-101", "README.txt"))
    # A flat val/ is sorted into wnid folders by the devkit's ids, which are not in wnid order.
    val = os.path.join(prepared, "imagenet", "images", "val")
    for i, wnid in enumerate(VAL_LABELS):
        link = os.path.join(val, wnid, f"ILSVRC2012_val_{i + 1:08d}.JPEG")
        assert os.path.realpath(link) == os.path.join(mirror["ilsvrc"], "val", os.path.basename(link))
    assert sorted(os.listdir(val)) == WNIDS
    assert os.path.islink(os.path.join(prepared, "imagenet", "images", "train", WNIDS[0]))
    # Nothing in flight is left; archives are removed once extracted.
    left = os.listdir(os.path.join(prepared, ".downloads"))
    assert not [n for n in left if n.endswith((".part", ".unverified", ".extract", ".tar", ".gz", ".tgz", ".zip"))]


def test_a_second_run_downloads_nothing(prepared, mirror, capsys):
    capsys.readouterr()
    before = len(mirror["server"].requests)
    assert main(["--root", prepared, "--sources", mirror["sources"], "--from", mirror["ilsvrc"], "--quiet", *KEYS]) == 0
    assert len(mirror["server"].requests) == before
    out = capsys.readouterr().out.splitlines()
    n_files = sum(len(spec.files) for spec in load_sources([mirror["sources"]], env={}).values())
    assert [line for line in out if line.endswith(": in place")] == [line for line in out if line.startswith("  ")
                                                                    and not line.endswith("kept as it is")]
    assert sum(line.endswith(": in place") for line in out) == n_files
    assert main(["--root", prepared, "--sources", mirror["sources"], "--list"]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[-1] == "To get: 0 files, 0 B"
    states = [line.split("): ", 1)[-1] for line in listing[:-1] if not line.startswith(" ")]
    assert states == ["present"] * 10 + ["present (images from a licensed copy: --from DIR)"] + ["present"] * 4
    assert all(line.endswith("  placed") for line in listing if line.startswith(" "))
    assert "  split_zhou_Caltech101.json" in listing[2] and "unverified" in listing[2]


def test_a_local_folder_is_a_source(mirror, tmp_path, capsys):
    local = write_sources(str(tmp_path / "local.yaml"), mirror["files"], {})
    root = str(tmp_path / "data")
    before = len(mirror["server"].requests)
    assert main(["--root", root, "--sources", mirror["sources"], "--sources", local, "--quiet", "eurosat"]) == 0
    out = capsys.readouterr().out
    assert f"  EuroSAT.zip: copying from {os.path.join(mirror['files'], 'EuroSAT.zip')}" in out
    assert "[present] EuroSAT: train 12 images / 4 classes" in out
    assert len(mirror["server"].requests) == before
    assert main(["--root", str(tmp_path / "fresh"), "--sources", local, "--list", "eurosat"]) == 0
    assert capsys.readouterr().out.splitlines()[0].endswith(": missing")


def test_a_training_run_reads_what_was_prepared(prepared, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "train.py", "--root", prepared, "--seed", "1", "--trainer", "MMRL",
         "--dataset-config-file", "configs/datasets/caltech101.yaml", "--config-file", "configs/trainers/MMRL/demo.yaml",
         "--output-dir", str(out), "DATASET.NUM_SHOTS", "1", "OPTIM.MAX_EPOCH", "1", "DATASET.SUBSAMPLE_CLASSES", "base",
         "TASK", "B2N"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    import json

    with open(out / "results.json") as f:
        result = json.load(f)
    # 3 base classes of the 5, 2 test images each.
    assert (result["dataset"], result["total"]) == ("Caltech101", 6)


def test_a_corrupted_byte_fails_the_checksum_and_the_others_go_on(mirror, tmp_path, capsys):
    root = str(tmp_path / "data")
    files = mirror["files"]
    corrupt = os.path.join(files, "corrupt-EuroSAT.zip")
    data = bytearray(open(os.path.join(files, "EuroSAT.zip"), "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(corrupt, "wb").write(bytes(data))
    sources = write_sources(str(tmp_path / "s.yaml"), mirror["server"].url,
                            {"eurosat": [{"name": "EuroSAT.zip", "url": f"{mirror['server'].url}/corrupt-EuroSAT.zip"}]})
    proc = run_prepare(capsys, "--root", root, "--sources", mirror["sources"], "--sources", sources, "--quiet", "eurosat", "dtd")
    assert proc.returncode == 1
    failed = [line for line in proc.stderr.splitlines() if line.startswith("[failed]")]
    url = f"{mirror['server'].url}/corrupt-EuroSAT.zip"
    published = md5(os.path.join(files, "EuroSAT.zip"))
    assert failed == [f"[failed] eurosat: EuroSAT.zip from {url}: checksum mismatch: md5 of the {len(data):,} bytes "
                      f"received is not the published {published}; point --sources (or MMRL_DATA_SOURCES) at a mirror "
                      f"of this file, or follow the manual steps in DATASETS.md"]
    assert "[present] DescribableTextures" in proc.stdout
    assert "1 of 2 datasets prepared" in proc.stdout and "failed: eurosat" in proc.stdout
    assert not os.path.exists(os.path.join(root, "eurosat"))
    assert not [n for n in os.listdir(os.path.join(root, ".downloads")) if n.startswith("EuroSAT")]


def test_a_dead_link_and_an_html_page_are_named(mirror, tmp_path, capsys):
    base = mirror["server"].url
    sources = write_sources(str(tmp_path / "s.yaml"), base, {
        "caltech101": [{"name": "101_ObjectCategories.tar.gz", "url": f"{base}/missing/101_ObjectCategories.tar.gz"}],
        "eurosat": [{"name": "EuroSAT.zip", "url": f"{base}/html/EuroSAT.zip"}],
    })
    root = str(tmp_path / "data")
    proc = run_prepare(capsys, "--root", root, "--sources", mirror["sources"], "--sources", sources, "--quiet",
                       "caltech101", "eurosat")
    assert proc.returncode == 1
    failed = [line for line in proc.stderr.splitlines() if line.startswith("[failed]")]
    assert failed[0].startswith(f"[failed] caltech101: 101_ObjectCategories.tar.gz from {base}/missing/"
                                f"101_ObjectCategories.tar.gz: the server answered HTTP 404 Not Found; point --sources")
    assert failed[1].startswith(f"[failed] eurosat: EuroSAT.zip from {base}/html/EuroSAT.zip: received an HTML page "
                                f"of 3.1 KB instead of the file")
    assert "Traceback" not in proc.stderr
    assert not os.path.exists(os.path.join(root, "eurosat")) and not os.path.exists(os.path.join(root, "caltech-101"))


def test_an_archive_member_outside_the_folder_is_refused(mirror, tmp_path, capsys):
    evil = os.path.join(mirror["files"], "evil-EuroSAT.zip")
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("2750/Forest/Forest_1.jpg", b"not really")
        zf.writestr("../../escaped.txt", b"outside")
    base = mirror["server"].url
    sources = write_sources(str(tmp_path / "s.yaml"), base, {"eurosat": [
        {"name": "EuroSAT.zip", "url": f"{base}/evil-EuroSAT.zip", "md5": md5(evil)}]})
    root = str(tmp_path / "deep" / "data")
    proc = run_prepare(capsys, "--root", root, "--sources", mirror["sources"], "--sources", sources, "--quiet", "eurosat")
    assert proc.returncode == 1
    assert "[failed] eurosat: EuroSAT.zip from " in proc.stderr
    assert "refused to extract the member '../../escaped.txt', which would land outside the extraction folder" in proc.stderr
    for folder in (root, os.path.dirname(root), str(tmp_path)):
        assert "escaped.txt" not in os.listdir(folder)
    assert not os.path.exists(os.path.join(root, "eurosat"))


def _big_eurosat(mirror, name: str, members: Dict[str, bytes]) -> str:
    """EuroSAT.zip of the mirror plus ``members``, under another name."""
    path = os.path.join(mirror["files"], name)
    shutil.copyfile(os.path.join(mirror["files"], "EuroSAT.zip"), path)
    with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
        for arcname, data in members.items():
            zf.writestr(arcname, data)
    return path


def _kill_when(proc: subprocess.Popen, ready, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.time() < deadline, "the moment to kill never came"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.mark.parametrize("moment", ["download", "extraction"])
def test_a_kill_then_a_rerun_gives_the_uninterrupted_tree(mirror, tmp_path, capsys, moment):
    base = mirror["server"].url
    if moment == "download":
        # Incompressible, and larger than gdown's 512 KB chunks, so a partial file is written
        # well before the end (~6 s at the slow rate).
        members = {"2750/large.bin": os.urandom(1_500_000)}
        mirror["server"].slow_rate = 256 * 1024
    else:
        # Enough members to keep the extraction going for a few tenths of a second.
        members = {f"2750/extra/{i:05d}.bin": os.urandom(64) for i in range(3000)}
    archive = _big_eurosat(mirror, f"{moment}-EuroSAT.zip", members)
    entry = {"name": "EuroSAT.zip", "md5": md5(archive), "size": os.path.getsize(archive)}
    fast = write_sources(str(tmp_path / "fast.yaml"), base, {"eurosat": [dict(entry, url=f"{base}/{moment}-EuroSAT.zip")]})
    slow = write_sources(str(tmp_path / "slow.yaml"), base, {"eurosat": [
        dict(entry, url=f"{base}/{'slow/' if moment == 'download' else ''}{moment}-EuroSAT.zip")]})
    reference, root = str(tmp_path / "reference"), str(tmp_path / "data")
    assert run_prepare(capsys, "--root", reference, "--sources", mirror["sources"], "--sources", fast, "eurosat").returncode == 0

    downloads = os.path.join(root, ".downloads")
    env = dict(os.environ, NO_PROXY="127.0.0.1", no_proxy="127.0.0.1")
    proc = subprocess.Popen([sys.executable, "-m", "mmrl.data.prepare", "--root", root, "--sources", mirror["sources"],
                             "--sources", slow, "eurosat"], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def partial_download() -> bool:
        names = os.listdir(downloads) if os.path.isdir(downloads) else []
        parts = [os.path.join(downloads, n) for n in names if n.endswith(".part")]
        return any(os.path.getsize(p) > 100_000 for p in parts if os.path.exists(p))

    def extracting() -> bool:
        return os.path.isdir(os.path.join(downloads, "EuroSAT.zip.extract", "2750"))

    _kill_when(proc, partial_download if moment == "download" else extracting)
    # The loaders never see a half-made dataset: nothing of the archive is in the dataset folder yet.
    assert not os.path.exists(os.path.join(root, "eurosat", "2750"))
    if moment == "download":
        listing = run_prepare(capsys, "--root", root, "--list", "--sources", mirror["sources"], "--sources", slow, "eurosat")
        assert "eurosat (EuroSAT, " in listing.stdout and "): partial" in listing.stdout
        assert f"of {os.path.getsize(archive) / 1e6:.1f} MB)" in listing.stdout
    mirror["server"].requests.clear()
    rerun = run_prepare(capsys, "--root", root, "--sources", mirror["sources"], "--sources", fast, "eurosat")
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    if moment == "download":
        # gdown resumed the partial file with a byte range instead of starting again.
        ranges = [r for path, r in mirror["server"].requests if path.endswith("download-EuroSAT.zip")]
        assert ranges and ranges[-1] and ranges[-1].startswith("bytes=") and ranges[-1] != "bytes=0-"
    assert tree(root) == tree(reference)
    for folder in (root, reference):  # not kept for pytest's later runs
        shutil.rmtree(folder)
    os.remove(archive)


def test_a_partial_download_restarts_where_the_server_ignores_byte_ranges(mirror, tmp_path, capsys):
    base = mirror["server"].url
    archive = os.path.join(mirror["files"], "EuroSAT.zip")
    sources = write_sources(str(tmp_path / "s.yaml"), base, {"eurosat": [
        {"name": "EuroSAT.zip", "url": f"{base}/norange/EuroSAT.zip"}]})
    root = str(tmp_path / "data")
    downloads = os.path.join(root, ".downloads")
    os.makedirs(downloads)
    # What a killed run leaves: gdown's partial file, here the first 1000 bytes.
    with open(archive, "rb") as f, open(os.path.join(downloads, "EuroSAT.zip.unverifiedabcd1234.part"), "wb") as part:
        part.write(f.read(1000))
    mirror["server"].requests.clear()
    assert main(["--root", root, "--sources", mirror["sources"], "--sources", sources, "--quiet", "eurosat"]) == 0
    asked = [r for path, r in mirror["server"].requests if path == "/norange/EuroSAT.zip"]
    assert asked[-2:] == ["bytes=1000-", None]  # the resume was refused, then the file was fetched whole
    assert "[present] EuroSAT" in capsys.readouterr().out
    assert sorted(os.listdir(downloads)) == ["EuroSAT.zip.placed", "split_zhou_EuroSAT.json"]


def test_unknown_names_and_a_missing_licence_say_what_to_do(mirror, tmp_path, capsys):
    with pytest.raises(UserError, match=r"unknown dataset 'calteck101'; did you mean 'caltech101'\?"):
        main(["--root", str(tmp_path), "calteck101"])
    root = str(tmp_path / "data")
    assert main(["--root", root, "--sources", mirror["sources"], "--quiet", "imagenet"]) == 1
    err = capsys.readouterr().err
    assert "[failed] imagenet: ImageNet cannot be downloaded for you (its licence)" in err
    assert f"--root {root} imagenet --from /path/to/ILSVRC2012" in err


def test_imagenet_from_a_copy_with_hard_links_and_without_a_devkit(mirror, tmp_path, capsys):
    root = str(tmp_path / "data")
    assert main(["--root", root, "--sources", mirror["sources"], "--quiet", "imagenet", "--from", mirror["ilsvrc"],
                 "--copy"]) == 0
    image = os.path.join(root, "imagenet", "images", "val", VAL_LABELS[0], "ILSVRC2012_val_00000001.JPEG")
    assert not os.path.islink(image) and os.stat(image).st_nlink == 2
    copy = str(tmp_path / "ilsvrc")
    shutil.copytree(mirror["ilsvrc"], copy)
    os.remove(os.path.join(copy, "ILSVRC2012_devkit_t12.tar.gz"))
    capsys.readouterr()
    assert main(["--root", str(tmp_path / "other"), "--sources", mirror["sources"], "imagenet", "--from", copy]) == 1
    assert (f"[failed] imagenet: ImageNet: {os.path.join(copy, 'val')} is flat (one folder of images), and sorting it "
            f"into wnid folders needs the devkit: put ILSVRC2012_devkit_t12.tar.gz (from image-net.org) in {copy} "
            f"or pass --devkit PATH") in capsys.readouterr().err
    assert os.listdir(str(tmp_path / "other" / "imagenet")) == []


def test_free_disk_space_is_checked_before_a_download(mirror, tmp_path, capsys):
    sources = write_sources(str(tmp_path / "s.yaml"), mirror["server"].url, {"eurosat": [
        {"name": "EuroSAT.zip", "md5": md5(os.path.join(mirror["files"], "EuroSAT.zip")), "size": 10 ** 15}]})
    root = str(tmp_path / "data")
    before = len(mirror["server"].requests)
    assert main(["--root", root, "--sources", mirror["sources"], "--sources", sources, "eurosat"]) == 1
    err = capsys.readouterr().err
    assert (f"[failed] eurosat: not enough free disk space in {os.path.join(root, '.downloads')}: EuroSAT.zip needs "
            f"1,000,000,000,000,000 bytes (1000.0 TB)") in err
    assert len(mirror["server"].requests) == before


def test_overrides_extend_or_replace_the_defaults(tmp_path):
    defaults = load_sources(env={})
    assert len(defaults) == 15
    caltech = defaults["caltech101"].files[0]
    assert (caltech.drive, caltech.md5, caltech.size) == ("137RyRjvTBkBiIfeYBNZBtViDHQ6_Ewsp",
                                                          "b224c7392d521a49829488ab0f1120d9", 131740031)
    assert defaults["caltech101"].files[1].verification == "unverified"
    extend = write_sources(str(tmp_path / "e.yaml"), "/mnt/archives", {
        "caltech101": [{"name": "101_ObjectCategories.tar.gz", "url": "https://lab.example/c101.tgz"}]})
    merged = load_sources([extend], env={})
    caltech = merged["caltech101"].files[0]
    # A new location keeps the published checksum and the layout; the mirror serves the rest.
    assert (caltech.url, caltech.drive, caltech.md5) == ("https://lab.example/c101.tgz", "", "b224c7392d521a49829488ab0f1120d9")
    assert caltech.extract == {"101_ObjectCategories": "101_ObjectCategories"}
    assert merged["caltech101"].files[1].url == "/mnt/archives/split_zhou_Caltech101.json"
    replace = str(tmp_path / "r.yaml")
    with open(replace, "w") as f:
        yaml.safe_dump({"replace": True, "datasets": {"eurosat": {"dataset": "EuroSAT", "files": [
            {"name": "EuroSAT.zip", "url": "/data/EuroSAT.zip", "extract": {"2750": "2750"}}]}}}, f)
    only = load_sources([], env={"MMRL_DATA_SOURCES": replace})
    assert list(only) == ["eurosat"] and only["eurosat"].files[0].verification == "unverified"
    bad = str(tmp_path / "bad.yaml")
    with open(bad, "w") as f:
        yaml.safe_dump({"datasets": {"eurosat": {"files": [{"name": "extra.bin", "url": "/x/extra.bin"}]}}}, f)
    with pytest.raises(UserError, match=r"datasets.eurosat.files\[2\] \(extra.bin\): give exactly one of 'place' \(a plain"):
        load_sources([bad], env={})
