"""Generate the model catalogue ``lieq/catalogue/models.csv`` (package data) from timm's metadata and the paper's lists.

Sources (all read, none copied into the repository):

* ``../shared/paper/paper_model_sets.csv``: the 483 model names of the paper's sweeps (2022 timm names) and their
  set membership (``e2e_all``, ``e2e_core``, ``layerwise_core``, ``layerwise_minimal``);
* ``../shared/paper/models_2022_to_timm.csv``: for each 2022 name, timm 1.0's status and the tag whose weights URL
  equals the 2022 default (where that could be established);
* timm's published tables (``results-imagenet.csv``, ``results-imagenetv2-matched-frequency.csv``,
  ``model_metadata-in1k.csv``) from ``--timm-results`` (default ``../shared/data/timm-results``), or downloaded from
  timm's public repository with ``--download`` when online;
* the installed timm: pretrained configurations (input size, crop, interpolation, mean/std, classes), the default tag
  of every architecture and parameter counts (models built on the ``meta`` device, so no memory is used).

Choice of ``timm_tag`` for a 2022 name, in order: a manual override for the traps of docs/conventions.md section 7 (see
``OVERRIDES``), the tag whose weights URL equals the 2022 one, the target of timm's deprecation map, the default tag
of the architecture restricted to 1000-class heads.  ``tag_source`` says which rule applied and ``tag_verified``
whether the weights are established to be the paper's.  Names with no architecture in the installed timm keep their
row with ``status=removed``, an empty ``timm_tag`` and a ``status_reason``.

Run again after a timm upgrade: ``make catalogue`` (rewrites ``lieq/catalogue/models.csv``).
"""

from __future__ import annotations

import argparse
import io
import re
import sys
import urllib.request
import warnings
from pathlib import Path

import pandas as pd

from lieq.paths import CATALOGUE, shared_data

SHARED = shared_data().parent  # ../shared of the checkout: paper/ (the paper's model lists) and data/
TIMM_RESULTS_URL = "https://raw.githubusercontent.com/huggingface/pytorch-image-models/main/results/{}"
TABLES = ["results-imagenet.csv", "results-imagenetv2-matched-frequency.csv", "model_metadata-in1k.csv"]

#: Traps of docs/conventions.md section 7 that the mapping table does not settle: 2022 name -> (timm tag, reason).
OVERRIDES: dict[str, tuple[str, str]] = {
    # 2022 "_in21k" mixers kept their ImageNet-21k head (21,843 classes); timm's deprecation map points at the
    # ImageNet-1k fine-tuned weights instead.
    "mixer_b16_224_in21k": ("mixer_b16_224.goog_in21k", "2022 model had the 21,843-class in21k head"),
    "mixer_l16_224_in21k": ("mixer_l16_224.goog_in21k", "2022 model had the 21,843-class in21k head"),
    # The paper's lists say vit_base_patch{16,32}_sam_224, a name timm never had; the SAM weights were
    # vit_base_patch{16,32}_224_sam, today's .sam_in1k tags.
    "vit_base_patch16_sam_224": ("vit_base_patch16_224.sam_in1k", "name never existed; SAM weights of ViT-B/16"),
    "vit_base_patch32_sam_224": ("vit_base_patch32_224.sam_in1k", "name never existed; SAM weights of ViT-B/32"),
    # The 2022 miil ViT was the ImageNet-1k fine-tune; the architecture's default tag is the 11,221-class in21k head.
    "vit_base_patch16_224_miil": ("vit_base_patch16_224_miil.in21k_ft_in1k", "2022 model was the in1k fine-tune"),
}

#: Tiny timm models for tests (the ``smoke`` preset); not part of the paper.
SMOKE = ["test_resnet.r160_in1k", "test_vit.r160_in1k", "test_efficientnet.r160_in1k", "resnet10t.c3_in1k"]
#: Real pretrained models that load offline from registry packages (``--weights pip``): the ``embedded`` preset.
EMBEDDED = ["tf_efficientnet_lite0.in1k", "tf_efficientnet_lite1.in1k", "tf_efficientnet_lite2.in1k"]

MIXER_PREFIXES = ("mixer_", "resmlp_", "gmlp_", "gmixer_")
VIT_PREFIXES = (
    "vit_",
    "deit_",
    "cait_",
    "xcit_",
    "crossvit_",
    "pit_",
    "twins_",
    "swin_",
    "coat_",
    "levit_",
    "beit_",
    "convit_",
    "tnt_",
    "nest_",
    "jx_nest_",
)
#: Ordered (regex on the timm architecture, group) pairs: the first match wins.
GROUPS: list[tuple[str, str]] = [
    (r"^vit_.*(resnet|r26|r50)", "ViT-hybrid"),
    (r"^vit_", "ViT"),
    (r"^deit_", "DeiT"),
    (r"^cait_", "CaiT"),
    (r"^xcit_", "XCiT"),
    (r"^crossvit_", "CrossViT"),
    (r"^pit_", "PiT"),
    (r"^twins_", "Twins"),
    (r"^swin_", "Swin"),
    (r"^coat_", "CoaT"),
    (r"^levit_", "LeViT"),
    (r"^beit_", "BEiT"),
    (r"^convit_", "ConViT"),
    (r"^tnt_", "TNT"),
    (r"nest_", "NesT"),
    (r"^mixer_", "MLP-Mixer"),
    (r"^resmlp_", "ResMLP"),
    (r"^gmlp_", "gMLP"),
    (r"^gmixer_", "MLP-Mixer"),
    (r"^convmixer_", "ConvMixer"),
    (r"^convnext", "ConvNeXt"),
    (r"^(tf_)?efficientnetv2|^efficientnetv2", "EfficientNetV2"),
    (r"^(tf_)?efficientnet|^eca_efficientnet|^gc_efficientnet", "EfficientNet"),
    (r"^(tf_)?mixnet", "MixNet"),
    (r"^(tf_)?mobilenetv3|^mobilenetv2", "MobileNet"),
    (r"^(mnasnet|semnasnet|spnasnet|fbnet|ghostnet|nasnet|pnasnet|tinynet)", "NAS-net"),
    (r"^regnet", "RegNet"),
    (r"^repvgg", "RepVGG"),
    (r"^vgg", "VGG"),
    (r"^nf_|^nfnet|^dm_nfnet|^eca_nfnet", "NFNet"),
    (r"^resnest", "ResNeSt"),
    (r"^res2ne", "Res2Net"),
    (r"^resnetrs", "ResNet-RS"),
    (r"^csp", "CSPNet"),
    (r"resnext|senet", "ResNeXt"),
    (r"resnet|^resnetblur|^bat_|^legacy_seresnet", "ResNet"),
    (r"^densenet", "DenseNet"),
    (r"^dla", "DLA"),
    (r"^dpn", "DPN"),
    (r"^hrnet", "HRNet"),
    (r"xception|^inception", "Inception/Xception"),
    (r"^tresnet", "TResNet"),
    (r"^rexnet", "ReXNet"),
    (r"^(ese_)?vovnet", "VoVNet"),
    (r"^selecsls", "SelecSLS"),
    (r"^gernet", "GENet"),
    (r"^test_", "test"),
]


def read_tables(timm_results: Path, download: bool) -> dict[str, pd.DataFrame]:
    out = {}
    for name in TABLES:
        path = timm_results / name
        if path.is_file():
            out[name] = pd.read_csv(path, thousands=",")
        elif download:
            with urllib.request.urlopen(TIMM_RESULTS_URL.format(name), timeout=30) as resp:
                out[name] = pd.read_csv(io.BytesIO(resp.read()), thousands=",")
        else:
            sys.exit(f"make_catalogue: {path} missing (give --timm-results DIR or --download)")
    return out


def family(arch: str) -> str:
    """CNN / ViT / Mixer, the paper's three architecture families (hybrids with attention count as ViT)."""
    if arch.startswith(MIXER_PREFIXES):
        return "Mixer"
    if arch.startswith(VIT_PREFIXES):
        return "ViT"
    return "CNN"


def arch_group(arch: str) -> str:
    for pattern, group in GROUPS:
        if re.search(pattern, arch):
            return group
    return "other"


def pretrain_data(name: str, tag: str, meta: str | None) -> str:
    """Pre-training data from the timm metadata table (keyed by 2022 names) or else from the tag's words."""
    text = f"{name}.{tag}"
    if re.search(r"jft|_ns\b|\.ns_", text):
        return "jft300m"
    if re.search(r"ig1b|ig_|swsl|wsl", text):
        return "ig1b"
    if re.search(r"yfcc|ssl_", text):
        return "yfcc100m"
    if re.search(r"in21k|in22k|in21ft1k|in22ft1k|21k|22k", text) or (meta or "").startswith("in21k"):
        return "in21k"
    return "in1k"


def training_notes(name: str, tag: str, meta: str | None) -> str:
    notes = []
    text = f"{name}.{tag}"
    rules = [
        (r"dist", "distilled"),
        (r"ens_adv|adv_|_adv", "adversarial"),
        (r"_ap\b|\.ap_", "advprop"),
        (r"sam", "sam"),
        (r"_ns\b|\.ns_", "noisy-student (semi-supervised)"),
        (r"ssl|semisl", "semi-supervised"),
        (r"wsl|ig_", "weakly-supervised"),
        (r"augreg", "augreg"),
        (r"_in21k$|\.goog_in21k$|\.in21k$", "in21k head"),
        (r"beit", "self-supervised pre-training"),
    ]
    for pattern, note in rules:
        if re.search(pattern, text) and note not in notes:
            notes.append(note)
    if meta and meta.endswith("-dist") and "distilled" not in notes:
        notes.append("distilled")
    return "; ".join(notes)


def default_tag(arch: str, one_k: bool = True) -> str | None:
    """The architecture's default pretrained tag, or its first 1000-class tag when the default has another head."""
    import timm

    tags = [t for t in timm.list_pretrained(f"{arch}.*")]
    default = timm.models.get_pretrained_cfg(arch)
    if not tags:
        return f"{arch}.{default.tag}" if default is not None and default.tag else None
    first = f"{arch}.{default.tag}" if default is not None and default.tag else tags[0]
    if not one_k or timm.models.get_pretrained_cfg(first).num_classes == 1000:
        return first
    ones = [t for t in tags if timm.models.get_pretrained_cfg(t).num_classes == 1000]
    return ones[0] if ones else first


#: Words of a tag (or name) that mean pre-training beyond ImageNet-1k.
EXTRA_DATA = re.compile(r"21k|22k|12k|jft|ig1b|yfcc|laion|clip|lvd|swag|m38m|openai|in21ft1k|in22ft1k")


def one_k_tags(arch: str) -> list[str]:
    import timm

    return [t for t in timm.list_pretrained(f"{arch}.*") if timm.models.get_pretrained_cfg(t).num_classes == 1000]


def choose_tag(name: str, status: str, url_tag: str) -> tuple[str, str, bool, str, str]:
    """``(timm_tag, tag_source, tag_verified, status, reason)`` for one 2022 name."""
    import timm

    if name in OVERRIDES:
        tag, reason = OVERRIDES[name]
        return tag, "manual (docs/conventions.md section 7)", True, "renamed", reason
    if url_tag and not timm.is_model(tag_arch(url_tag)):
        reason = f"2022 weights are {url_tag}, but timm {timm.__version__} has no architecture {tag_arch(url_tag)!r}"
        return "", "", False, "removed", reason
    if url_tag:
        kind = "ok" if tag_arch(url_tag) == name else "renamed"
        return url_tag, "2022 weights URL match", True, kind, ""
    m = re.match(r"deprecated -> (\S+)", status)
    if m:
        target = m.group(1)
        if "." not in target:
            target = default_tag(target) or ""
        if target and timm.is_model(tag_arch(target)):
            return target, "timm deprecation map", False, "renamed", "2022 weights not verified by URL"
    if timm.is_model(name):
        tag = default_tag(name)
        if tag and tag.endswith(".untrained"):
            return tag, "default tag", False, "no-weights", "timm has no pretrained weights for this architecture"
        if tag and EXTRA_DATA.search(tag.split(".", 1)[1]) and not EXTRA_DATA.search(name):
            plain = [t for t in one_k_tags(name) if not EXTRA_DATA.search(t.split(".", 1)[1])]
            if plain:  # a 2022 name without extra data: prefer ImageNet-1k-only weights, native resolution
                plain.sort(key=lambda t: bool(re.search(r"_\d{3}$", t)))
                reason = f"2022 weights not verified by URL; default {tag} uses extra data"
                return plain[0], "in1k-only tag (name has no extra data)", False, "ok", reason
        if tag:
            return tag, "default 1000-class tag", False, "ok", "2022 weights not verified by URL"
    return "", "", False, "removed", f"no architecture {name!r} in timm {timm.__version__}"


def tag_arch(tag: str) -> str:
    return tag.split(".", 1)[0]


def count_params(tag: str) -> float | None:
    """Parameters in millions, counted on a model built on the ``meta`` device (no memory, no weights)."""
    import timm
    import torch

    try:
        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = timm.create_model(tag, pretrained=False)
        return round(sum(p.numel() for p in model.parameters()) / 1e6, 3)
    except Exception:
        return None


def timm_rows(tags: list[str], tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    import timm

    res = tables["results-imagenet.csv"]
    v2 = tables["results-imagenetv2-matched-frequency.csv"]
    rows = []
    for tag in tags:
        cfg = timm.models.get_pretrained_cfg(tag) if tag else None
        row = {"timm_tag": tag}
        if cfg is not None:
            size = cfg.input_size[-1]
            row.update(
                input_size=size,
                crop_pct=cfg.crop_pct,
                interpolation=cfg.interpolation,
                mean=" ".join(f"{v:.4f}" for v in cfg.mean),
                std=" ".join(f"{v:.4f}" for v in cfg.std),
                num_classes=cfg.num_classes,
                params=count_params(tag),
            )
            for table, prefix in ((res, "timm_top1"), (v2, "timm_top1_v2")):
                hit = table[(table.model == tag) & (table.img_size == size)]
                if hit.empty:
                    hit = table[table.model == tag]
                if not hit.empty:
                    row[prefix] = float(hit.top1.iloc[0])
                    if prefix == "timm_top1":
                        row["timm_top1_img_size"] = int(hit.img_size.iloc[0])
                        row["timm_top5"] = float(hit.top5.iloc[0])
        rows.append(row)
    return pd.DataFrame(rows)


def build(paper_dir: Path, timm_results: Path, download: bool) -> pd.DataFrame:
    import timm

    sets = pd.read_csv(paper_dir / "paper_model_sets.csv")
    mapping = pd.read_csv(paper_dir / "models_2022_to_timm.csv", keep_default_na=False)
    tables = read_tables(timm_results, download)
    meta = dict(zip(tables["model_metadata-in1k.csv"].model, tables["model_metadata-in1k.csv"].pretrain))
    paper = sets.merge(mapping, on="name_2022", how="left", validate="one_to_one").fillna("")
    rows = []
    for r in paper.itertuples(index=False):
        tag, source, verified, status, reason = choose_tag(
            r.name_2022, r.timm_head_status, r.head_tag_with_same_2022_url
        )
        rows.append(
            {
                "name_2022": r.name_2022,
                "timm_tag": tag,
                "status": status,
                "status_reason": reason,
                "tag_source": source,
                "tag_verified": verified,
                "timm_status_2022_map": r.timm_head_status,
                "pretrain_timm_meta": meta.get(r.name_2022, ""),
                **{k: int(getattr(r, k)) for k in ("e2e_all", "e2e_core", "layerwise_core", "layerwise_minimal")},
            }
        )
    extra = [t for t in SMOKE + EMBEDDED if t not in {row["timm_tag"] for row in rows}]
    for tag in extra:
        rows.append(
            {"name_2022": "", "timm_tag": tag, "status": "ok", "tag_source": "lieq preset", "tag_verified": True}
        )
    table = pd.DataFrame(rows)
    for col in ("e2e_all", "e2e_core", "layerwise_core", "layerwise_minimal"):
        table[col] = table[col].fillna(0).astype(int)
    table["embedded"] = table.timm_tag.isin(EMBEDDED).astype(int)
    table["smoke"] = table.timm_tag.isin(SMOKE).astype(int)
    table["arch"] = table.timm_tag.map(lambda t: tag_arch(t) if t else "")
    key = table.arch.where(table.arch != "", table.name_2022)
    table["family"] = key.map(family)
    table["arch_group"] = key.map(arch_group)
    names = table.name_2022.fillna("")
    metas = table.pretrain_timm_meta.fillna("")
    table["pretrain_data"] = [pretrain_data(n, t, m) for n, t, m in zip(names, table.timm_tag, metas)]
    table["training"] = [training_notes(n, t, m) for n, t, m in zip(names, table.timm_tag, metas)]
    table = table.merge(timm_rows(list(table.timm_tag), tables).drop_duplicates("timm_tag"), on="timm_tag", how="left")
    for col in ("input_size", "num_classes", "timm_top1_img_size"):
        table[col] = table[col].astype("Int64")
    table["timm_version"] = timm.__version__
    order = [
        "name_2022",
        "timm_tag",
        "status",
        "status_reason",
        "tag_source",
        "tag_verified",
        "family",
        "arch_group",
        "arch",
        "params",
        "input_size",
        "crop_pct",
        "interpolation",
        "mean",
        "std",
        "num_classes",
        "pretrain_data",
        "training",
        "pretrain_timm_meta",
        "e2e_all",
        "e2e_core",
        "layerwise_core",
        "layerwise_minimal",
        "embedded",
        "smoke",
        "timm_top1",
        "timm_top5",
        "timm_top1_img_size",
        "timm_top1_v2",
        "timm_status_2022_map",
        "timm_version",
    ]
    return table[order]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--paper", type=Path, default=SHARED / "paper", help="folder with the paper's model lists")
    parser.add_argument("--timm-results", type=Path, default=SHARED / "data" / "timm-results")
    parser.add_argument("--download", action="store_true", help="fetch timm's tables from GitHub when not local")
    parser.add_argument("--out", type=Path, default=Path(str(CATALOGUE)))
    args = parser.parse_args(argv)
    table = build(args.paper, args.timm_results, args.download)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False)
    counts = table.status.value_counts().to_dict()
    print(f"{len(table)} rows ({int(table.e2e_all.sum())} paper models; status {counts}) -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
