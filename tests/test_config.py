import pytest

from labkit.config import PROFILES, ProfileError, get_profile, profile_name


def test_default_profile_is_cpu(monkeypatch):
    monkeypatch.delenv("LABKIT_PROFILE", raising=False)
    assert get_profile().name == "cpu"


@pytest.mark.parametrize("name", ["smoke", "cpu", "gpu", " GPU ", "Smoke", "gpu-tiny"])
def test_known_profiles(monkeypatch, name):
    monkeypatch.setenv("LABKIT_PROFILE", name)
    assert get_profile().name == name.strip().lower()


@pytest.mark.parametrize("bad", ["fast", "small", "full", "cpu2", "gpu,cpu"])
def test_unknown_profile_is_a_clear_error(monkeypatch, bad):
    monkeypatch.setenv("LABKIT_PROFILE", bad)
    with pytest.raises(ProfileError, match=repr(bad).replace("(", r"\(")) as err:
        get_profile()
    assert "smoke" in str(err.value) and "LABKIT_PROFILE" in str(err.value)


def test_empty_value_means_default():
    assert profile_name("") == "cpu"


def test_profiles_scale_in_the_right_direction():
    smoke, cpu, gpu = PROFILES["smoke"], PROFILES["cpu"], PROFILES["gpu"]
    assert smoke.moe.train_tokens < cpu.moe.train_tokens
    assert cpu.moe.train_tokens == 100_000  # LaDiMo's budget in the book's default build
    assert gpu.moe.model == "meta-llama/Llama-2-7b-hf"
    assert cpu.moe.model == "smollm2-135m"
    assert gpu.device == "cuda" and cpu.device == "cpu"
    assert "LABKIT_PROFILE=smoke" in smoke.summary()
    assert smoke.as_dict()["moe"]["train_tokens"] == smoke.moe.train_tokens


def test_gpu_tiny_mirrors_the_gpu_profiles_part_one_shape():
    from labkit.models import TINY_CONFIGS
    from labkit.moe.accounting import llama2_7b_config

    tiny, gpu, ref = PROFILES["gpu-tiny"], PROFILES["gpu"], llama2_7b_config()
    shape = TINY_CONFIGS[tiny.moe.model]
    assert (shape["hidden_size"], shape["intermediate_size"]) == (ref.hidden_size, ref.intermediate_size)
    assert shape["num_attention_heads"] == ref.num_attention_heads and shape["num_hidden_layers"] < 32
    assert tiny.dtype == gpu.dtype == "bfloat16" and tiny.device == "cpu"
    assert tiny.moe.lr == gpu.moe.lr and tiny.moe.train_tokens < 2_000
