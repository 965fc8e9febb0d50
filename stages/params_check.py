"""params_check: the whole of params.yaml validated on any change to it, before every other stage (a
misspelt key that no stage reads, such as one added by `dvc exp run -S +key=value`, stops the run here)."""
from hybrid_ir.io import write_text
from hybrid_ir.stage import PARAMS_CHECKED, run


def main(params, argv):
    # constant content: the stages after this one re-run only for their own deps
    write_text(PARAMS_CHECKED, "params.yaml validated by hybrid_ir.params\n")


if __name__ == "__main__":
    run(main, uses_torch=False)
