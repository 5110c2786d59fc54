import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)
    yield


@pytest.fixture
def resumes_bit_for_bit(tmp_path):
    """``check(make_recipe, seed, until)``: trains a small 2D RealNVP on ``make_recipe()`` straight through, then
    again stopped at step ``until`` and resumed; asserts equal weights and equal logged records (wall times
    aside) and returns the straight run's records."""
    import json

    import mlmol
    from mlmol import flows

    def check(make_recipe, seed: int, until: int) -> list[dict]:
        def train(stop=None, resume=False):
            torch.manual_seed(0)
            flow = flows.RealNVP(2, blocks=2, hidden=(16,))
            mlmol.fit(flow, make_recipe(), seed=seed, checkpoint=tmp_path / "c.pt", metrics=tmp_path / "m.jsonl",
                      until=stop, resume=resume, log_every=1)
            return flow

        def log():
            records = [json.loads(line) for line in (tmp_path / "m.jsonl").read_text().splitlines()]
            return [{k: v for k, v in r.items() if k != "time_s"} for r in records]

        straight = train()
        straight_log = log()
        train(stop=until)
        resumed = train(resume=True)
        for a, b in zip(straight.parameters(), resumed.parameters()):
            assert torch.equal(a, b)
        assert log() == straight_log
        return straight_log

    return check
