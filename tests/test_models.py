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


@pytest.mark.parametrize("name", ["googlenet", "vgg16", "resnet50"])
def test_classic_models_load_a_local_state_dict(name, tmp_path):
    state = _torchvision_state(name)
    path = tmp_path / f"{name}.pth"
    torch.save(state, path)
    net = get_model(name, weights=str(path))
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
