import pytest


@pytest.fixture(scope="session")
def tiny_parts():
    """A very small untrained codec + LM; one torch thread (the machine is shared: more threads spin)."""
    import torch

    from fullduplex.systems.build import random_parts

    torch.set_num_threads(1)
    return random_parts("tiny", seed=0)
