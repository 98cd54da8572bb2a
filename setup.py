from setuptools import find_packages, setup

with open("README.md", encoding="utf-8") as f:
    long_description = f.read()

setup(
    name="mmrl",
    version="0.1.0",
    description="MMRL and MMRL++: multi-modal representation learning for few-shot adaptation of frozen CLIP",
    long_description=long_description,
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    # Only the library is installed. trainers/ and datasets/ are run from the
    # repository root (a top-level `datasets` package would shadow Hugging Face's).
    packages=find_packages(include=["mmrl", "mmrl.*"]),
    install_requires=[
        "torch",
        "torchvision",
        "openai-clip",
        # clip imports pkg_resources, which setuptools 81 removes.
        "setuptools<81",
        "yacs",
        "tabulate",
        "gdown",
        "tqdm",
        "numpy",
        "Pillow",
        "PyYAML",
    ],
    extras_require={
        # matplotlib draws parse_test_res.py --plot; the tests draw every figure.
        "plot": ["matplotlib"],
        # scipy writes and reads the .mat files of the miniature archives (tests/archives.py) and
        # the ImageNet devkit's meta.mat (python -m mmrl.data.prepare imagenet --from).
        "test": ["pytest", "matplotlib", "scipy"],
        "data": ["scipy"],
        # LAUNCHER=slurm of the protocol sweeps.
        "slurm": ["submitit"],
    },
)
