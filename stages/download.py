"""download: every pinned corpus file from the local mirror or its upstream URL, sha256-checked."""
from pathlib import Path

from tqdm import tqdm

from hybrid_ir.corpora import SOURCES, fetch_corpus
from hybrid_ir.stage import DATA, run


def main(params, argv):
    mirror = Path(params.data.mirror) if params.data.mirror else None
    with tqdm(total=sum(len(s.files) for s in SOURCES.values()), desc="download", unit="file") as bar:
        for name in SOURCES:
            fetch_corpus(name, DATA / "corpora" / name, mirror, params.data.allow_network, bar)


if __name__ == "__main__":
    run(main)
