"""Prompt templates, keyed by dataset registry name: the one table of the project.

Every CLIP-based trainer (zero-shot, MMRL, MMRL++) formats class names through
:func:`class_prompts`, so a dataset's prompt is defined here and nowhere else.
"""
from typing import Dict, List

DEFAULT_TEMPLATE = "a photo of a {}."

TEMPLATES: Dict[str, str] = {
    "OxfordPets": "a photo of a {}, a type of pet.",
    "OxfordFlowers": "a photo of a {}, a type of flower.",
    "FGVCAircraft": "a photo of a {}, a type of aircraft.",
    "DescribableTextures": "{} texture.",
    "EuroSAT": "a centered satellite photo of {}.",
    "StanfordCars": DEFAULT_TEMPLATE,
    "Food101": "a photo of {}, a type of food.",
    "SUN397": DEFAULT_TEMPLATE,
    "Caltech101": DEFAULT_TEMPLATE,
    "UCF101": "a photo of a person doing {}.",
    "ImageNet": DEFAULT_TEMPLATE,
    "ImageNetSketch": DEFAULT_TEMPLATE,
    "ImageNetV2": DEFAULT_TEMPLATE,
    "ImageNetA": DEFAULT_TEMPLATE,
    "ImageNetR": DEFAULT_TEMPLATE,
}


def template_for(dataset_name: str) -> str:
    """The template of a registered dataset; datasets not in the table use the default."""
    return TEMPLATES.get(dataset_name, DEFAULT_TEMPLATE)


def class_prompts(template: str, classnames: List[str]) -> List[str]:
    """One prompt per class. Underscores become spaces, as in the reference."""
    if "{}" not in template:
        raise ValueError(f"prompt template {template!r} has no '{{}}' placeholder for the class name")
    return [template.format(name.replace("_", " ")) for name in classnames]
