import pytest
import torch
import torch.nn.functional as F
import torchvision

from dream_core.errors import UnknownModel
from dream_core.models import get_model, list_models, model_info
from dream_core.models.lite0 import lite0_classifier


@pytest.mark.parametrize("photo, expected", [("chelsea", 285), ("coffee", 967)])
def test_lite0_packaged_weights_classify_real_photos(photo, expected):
    import skimage.data

    net = lite0_classifier("package")
    img = getattr(skimage.data, photo)()
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    x = F.interpolate(x, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)
    with torch.no_grad():
        probs = net(x).softmax(1)[0]
    assert probs.argmax().item() == expected
    assert probs.max().item() > 0.5


def test_registry_lists_models_with_layers_and_defaults():
    assert set(list_models()) == {"lite0", "googlenet", "vgg16", "resnet50"}
    for name in list_models():
        info = model_info(name)
        assert info.default_layer in info.layers
    assert model_info("lite0").weights_offline()
    with pytest.raises(UnknownModel, match="valid: lite0"):
        model_info("alexnet")


def _torchvision_state(name: str) -> dict:
    build = {"googlenet": lambda: torchvision.models.googlenet(weights=None, aux_logits=False, init_weights=True),
             "vgg16": lambda: torchvision.models.vgg16(weights=None),
             "resnet50": lambda: torchvision.models.resnet50(weights=None)}[name]
    torch.manual_seed(0)
    state = build().state_dict()
    if name == "vgg16":  # keep the file small: only the trunk is used
        state = {k: v for k, v in state.items() if k.startswith("features.")}
    return state


@pytest.mark.parametrize("name", ["googlenet", pytest.param("vgg16", marks=pytest.mark.slow), "resnet50"])
def test_classic_models_load_a_local_state_dict(name, tmp_path, monkeypatch):
    state = _torchvision_state(name)
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    folded = get_model(name, weights=str(path))
    monkeypatch.setattr("dream_core.models.classic.fold_batch_norms", lambda pairs: 0)  # the file's tensors as read
    net = get_model(name, weights=str(path))
    layer = model_info(name).default_layer
    with torch.no_grad():
        x = torch.rand(1, 3, 64, 64)
        want, got = net(x, [layer])[layer], folded(x, [layer])[layer]
    assert (got - want).abs().mean() < 1e-4 * want.abs().mean()  # folded, the same network
    loaded = {k: v for k, v in net.state_dict().items()}
    # every tensor of the file that the trunk uses arrived unchanged
    some = [k for k in state if "weight" in k][:3]
    for key in some:
        match = [v for v in loaded.values() if v.shape == state[key].shape and torch.equal(v, state[key])]
        assert match, f"{key} not loaded"
    assert all(not p.requires_grad for p in net.parameters())
    acts = net(torch.rand(1, 3, 64, 64), [model_info(name).default_layer])
    assert torch.isfinite(next(iter(acts.values()))).all()


def test_state_dict_missing_tensors_is_a_clear_error(tmp_path):
    path = tmp_path / "broken.pth"
    torch.save({"conv1.conv.weight": torch.zeros(64, 3, 7, 7)}, path)
    with pytest.raises(ValueError, match="weights lack"):
        get_model("googlenet", weights=str(path))


def test_missing_weights_file_is_reported():
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        get_model("lite0", weights="/nonexistent/weights.pth")


def test_forward_stops_at_the_deepest_requested_layer():
    net = get_model("lite0", weights=None)
    calls = []
    for name, stage in zip(net.layer_names, net.stages):
        stage.register_forward_hook(lambda m, i, o, name=name: calls.append(name))
    net(torch.rand(1, 3, 64, 64), ["block3"])
    assert calls[-1] == "block3" and "block4" not in calls


def test_unknown_layer_lists_valid_ones():
    net = get_model("lite0", weights=None)
    with pytest.raises(KeyError, match="valid: stem, block0"):
        net(torch.rand(1, 3, 64, 64), ["block99"])



def _randomised_batch_norms(net):
    """Running statistics and affine parameters far from the identity."""
    generator = torch.Generator().manual_seed(0)
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            shape = module.running_mean.shape
            module.running_mean.copy_(torch.randn(shape, generator=generator))
            module.running_var.copy_(torch.rand(shape, generator=generator) * 2 + 0.1)
            module.weight.data.copy_(torch.randn(shape, generator=generator))
            module.bias.data.copy_(torch.randn(shape, generator=generator))
    return net.eval()


@pytest.mark.parametrize("name", ["lite0", "googlenet", "resnet50"])
def test_folded_batch_norms_compute_the_same_layers(name):
    """Every BatchNorm is folded into its convolution at load (a frame in
    0.6-0.7 of the time on a CPU): each layer's activation is the one the
    network with its BatchNorms computes, up to rounding."""
    import copy

    from dream_core.models import classic, lite0
    from dream_core.models.backbone import fold_batch_norms

    if name == "lite0":  # folded on the classifier, before the stages are made from it (as get_model does)
        net = _randomised_batch_norms(lite0_classifier(None))
        folded_net = copy.deepcopy(net)
        assert fold_batch_norms(lite0.batch_norm_pairs(folded_net)) == 49
        plain, folded = lite0.staged(net).eval(), lite0.staged(folded_net).eval()
    else:
        plain = _randomised_batch_norms(classic.BUILDERS[name][0]()[1])
        folded = copy.deepcopy(plain)
        assert fold_batch_norms(classic.batch_norm_pairs(folded)) > 0
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    x = torch.rand(1, 3, 96, 128, generator=torch.Generator().manual_seed(1))
    layers = model_info(name).layers
    with torch.no_grad():
        want, got = plain(x, set(layers)), folded(x, set(layers))
    for layer in layers:
        scale = want[layer].abs().mean().clamp(min=1e-6)
        assert (got[layer] - want[layer]).abs().mean() / scale < 1e-4, layer


def test_weights_that_cannot_be_downloaded_say_so(monkeypatch):
    """Offline, a model whose weights download on first use is refused with
    its own error (and protocol code), naming the way out, not a URL error."""
    import urllib.error

    from dream_core.errors import WeightsUnavailable

    def offline(self, *args, **kwargs):
        raise urllib.error.URLError("[Errno -2] Name or service not known")

    monkeypatch.setattr(torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.__class__, "get_state_dict", offline)
    with pytest.raises(WeightsUnavailable) as err:
        get_model("googlenet")
    assert err.value.code == "weights_unavailable"
    assert "could not download the googlenet weights" in str(err.value) and "lite0" in str(err.value)


def test_the_classic_checkpoints_are_torchvisions_and_a_hello_loads_no_torchvision():
    """A server's hello says which models' weights are on disk; it names the checkpoints itself, so that a
    lite0 server never loads torchvision (1.3 s, and its memory) for it."""
    import os
    import subprocess
    import sys

    from conftest import ROOT

    from dream_core.models.classic import CHECKPOINTS

    enums = {"googlenet": torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1,
             "vgg16": torchvision.models.VGG16_Weights.IMAGENET1K_V1,
             "resnet50": torchvision.models.ResNet50_Weights.IMAGENET1K_V2}
    assert CHECKPOINTS == {name: os.path.basename(enum.url) for name, enum in enums.items()}
    script = ("import sys\nfrom dream_core.serving.worker import Worker\nWorker('cpu').info()\n"
              "print('torchvision' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": ROOT})
    assert result.returncode == 0 and result.stdout.split()[-1] == "False", result.stdout + result.stderr
