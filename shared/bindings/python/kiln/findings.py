"""A dataset's quality findings grouped for people: the dataset's own first, then each image that
has some, each finding with its reason (naming the image and the numbers) and what to do.

Host-free: the Krita docker and the Blender panel show the same groups the CLI prints
(`kiln dataset check`). Works on the `datasets.get` result (or an import job's result), where
each finding is {code, message, action, other?}.
"""

from dataclasses import dataclass, field
from typing import List, Optional

# Short labels for the codes, for narrow columns (the message says the rest).
LABELS = {
    "blurry": "blurry",
    "too_small": "too small",
    "upscaled": "face copy enlarged",
    "near_duplicate": "same picture as another",
    "extreme_aspect": "too long or too tall",
    "transparent": "empty layer",
    "flat": "one flat colour",
    "no_face": "no face found",
    "no_subject": "no clear subject",
    "few_images": "few images",
    "steps": "training length",
}


@dataclass
class Finding:
    code: str
    message: str
    action: str = ""
    other: str = ""   # near_duplicate: id of the image to keep

    @property
    def label(self):
        return LABELS.get(self.code, self.code.replace("_", " "))


@dataclass
class FindingGroup:
    title: str                       # "Dataset 'acme'" or "0003  IMG_3.jpg"
    image_id: Optional[str] = None   # None for the dataset's own findings
    source_name: str = ""
    findings: List[Finding] = field(default_factory=list)


def _findings(raw):
    out = []
    for f in raw or []:
        if isinstance(f, dict):
            out.append(Finding(str(f.get("code", "")), str(f.get("message", "")), str(f.get("action", "") or ""),
                               str(f.get("other", "") or "")))
    return out


def group_findings(dataset):
    """The groups to show, in order: the dataset's own findings (when it has any), then each image
    with findings, in the dataset's order. Images without findings are left out (count_clean)."""
    groups = []
    name = dataset.get("name", "")
    own = _findings(dataset.get("findings"))
    if own:
        groups.append(FindingGroup("Dataset '%s'" % name if name else "Dataset", None, "", own))
    for image in dataset.get("images") or []:
        if not isinstance(image, dict):
            continue
        found = _findings(image.get("findings"))
        if found:
            source = image.get("source_name") or image.get("stored_file", "?")
            groups.append(FindingGroup("%s  %s" % (image.get("id", "?"), source), image.get("id"), source, found))
    return groups


def count_clean(dataset):
    """How many images have no findings."""
    return sum(1 for image in dataset.get("images") or [] if isinstance(image, dict) and not image.get("findings"))


def summary(dataset):
    """One line: "3 findings on 2 of 24 images, 1 for the whole dataset" or "No findings on 24 images"."""
    images = [i for i in dataset.get("images") or [] if isinstance(i, dict)]
    flagged = [i for i in images if i.get("findings")]
    on_images = sum(len(i.get("findings") or []) for i in flagged)
    own = len(_findings(dataset.get("findings")))
    if not on_images and not own:
        return "No findings on %d image%s." % (len(images), "" if len(images) == 1 else "s")
    parts = []
    if on_images:
        parts.append("%d finding%s on %d of %d image%s" % (on_images, "" if on_images == 1 else "s", len(flagged),
                                                          len(images), "" if len(images) == 1 else "s"))
    if own:
        parts.append("%d for the whole dataset" % own)
    return ", ".join(parts) + "."


def as_text(dataset):
    """The groups as plain text, indented as `kiln dataset check` prints them."""
    lines = []
    for group in group_findings(dataset):
        lines.append(group.title)
        for f in group.findings:
            lines.append("  ! %s: %s" % (f.code, f.message))
            if f.action:
                lines.append("    -> %s" % f.action)
    clean = count_clean(dataset)
    if clean:
        lines.append("%d image%s without findings" % (clean, "" if clean == 1 else "s"))
    return "\n".join(lines)


def duplicates_to_remove(dataset):
    """Ids of the images Kiln suggests removing as copies (near_duplicate names the one to keep)."""
    return [image.get("id") for image in dataset.get("images") or [] if isinstance(image, dict)
            and any(isinstance(f, dict) and f.get("code") == "near_duplicate" for f in image.get("findings") or [])]


def by_image(dataset):
    """{image id: [Finding]} for every image (empty lists for clean ones): a gallery's badges."""
    return {image.get("id"): _findings(image.get("findings")) for image in dataset.get("images") or []
            if isinstance(image, dict) and image.get("id")}


def tooltip(image, found=None):
    """A gallery item's tooltip: the image's name, then each finding's reason and what to do
    (or that it has none)."""
    found = _findings(image.get("findings")) if found is None else found
    lines = ["%s  %s" % (image.get("id", "?"), image.get("source_name") or image.get("stored_file", ""))]
    if image.get("caption"):
        lines.append("Caption: " + image["caption"])
    if not found:
        lines.append("No findings.")
    for f in found:
        lines.append("! %s" % f.message)
        if f.action:
            lines.append("  -> %s" % f.action)
    return "\n".join(lines)
