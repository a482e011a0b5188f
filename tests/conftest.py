import os
import sys

# Tests import the top-level modules (tokenizer, prepare, train, ...) from the repository root.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

import pytest  # noqa: E402
import torch  # noqa: E402

# The tests use tiny models, where a second thread costs more in synchronisation than it gains,
# and on a busy 2-core machine it can make a tiny matmul 10-50x slower.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """40 songs of the built-in corpus, prepared with a 300-token vocabulary (301 with <|endoftext|>)."""
    import prepare

    out = tmp_path_factory.mktemp("data") / "songs"
    prepare.main(["--dataset=hey-bob", "--max_songs=40", "--vocab_size=300", f"--out_dir={out}"])
    return str(out)
