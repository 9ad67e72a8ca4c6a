import numpy as np
import pytest
import torch

from cropmap.errors import TrainingError
from cropmap.learning.model import ModelConfig, SpatioTemporalNet, doy_encoding
from cropmap.mapping.predict import blend_weights, predict_probability, window_starts
from cropmap.learning.training import (load_checkpoint, masked_mse, save_checkpoint, spatial_aggregation_loss,
                              vegetation_mask, visual_similarity_loss)


@pytest.fixture
def model():
    torch.manual_seed(0)
    return SpatioTemporalNet(ModelConfig(in_bands=4, width=8, heads=2)).eval()


def test_shapes(model):
    x = torch.randn(2, 5, 4, 16, 16)
    doy = torch.tensor([[60, 90, 120, 150, 180]] * 2, dtype=torch.float32)
    assert model(x, doy).shape == (2, 2, 16, 16)
    mask = torch.zeros(2, 5, 16, 16, dtype=torch.bool)
    assert model.reconstruct(x, doy, mask).shape == x.shape


def test_doy_encoding_depends_on_day_not_index():
    a = doy_encoding(torch.tensor([[100.0, 110.0]]), 8)
    b = doy_encoding(torch.tensor([[90.0, 100.0, 110.0]]), 8)
    torch.testing.assert_close(a[0], b[0, 1:])


def test_masked_mse_uses_masked_entries_only():
    target = torch.zeros(1, 2, 3, 2, 2)
    pred = torch.zeros_like(target)
    pred[0, 1] = 10.0  # wrong only on date 1
    mask = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    mask[0, 0] = True
    assert masked_mse(pred, target, mask).item() == 0.0
    mask[0, 1, 0, 0] = True
    assert masked_mse(pred, target, mask).item() == pytest.approx(100.0 / 5)


def test_vegetation_mask_only_on_vegetated_dates():
    patches = np.zeros((1, 2, 4, 4, 4), np.int16)  # bands B02 B03 B04 B08
    patches[0, 0, 2], patches[0, 0, 3] = 500, 4000  # date 0 vegetated (NDVI 0.78)
    patches[0, 1, 2], patches[0, 1, 3] = 2000, 2200  # date 1 bare (NDVI 0.05)
    veg = vegetation_mask(patches, ["B02", "B03", "B04", "B08"], threshold=0.2)
    assert veg[0, 0].all() and not veg[0, 1].any()


def test_regularisers_reward_smooth_consistent_predictions():
    feats = torch.zeros(1, 3, 8, 8)
    feats[..., 4:] = 5.0  # two visually distinct halves
    split = torch.zeros(1, 2, 8, 8)
    split[:, 1, :, 4:] = 1
    split[:, 0, :, :4] = 1
    speckle = torch.zeros(1, 2, 8, 8)
    speckle[:, 1, ::2, ::2] = 1
    speckle[:, 0] = 1 - speckle[:, 1]
    assert visual_similarity_loss(split, feats, sigma=0.5) < visual_similarity_loss(speckle, feats, sigma=0.5)
    assert spatial_aggregation_loss(split) < spatial_aggregation_loss(speckle)


def test_checkpoint_roundtrip_is_weights_only(tmp_path, model):
    path = tmp_path / "m.pt"
    save_checkpoint(path, {"state_dict": model.state_dict(), "model_config": model.config.to_dict(), "bands": ["a"]})
    assert load_checkpoint(path)["bands"] == ["a"]


def test_checkpoint_that_would_run_code_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    path = tmp_path / "evil.pt"
    torch.save({"x": Evil()}, path)
    with pytest.raises(TrainingError, match="cannot load checkpoint"):
        load_checkpoint(path)


def test_window_starts_cover_everything():
    assert window_starts(100, 32, 24) == [0, 24, 48, 68]
    assert window_starts(20, 32, 24) == [0]
    weights = blend_weights(32, 8)
    assert weights.min() > 0 and weights[16, 16] == 1


def test_blending_constant_input_gives_constant_output(model):
    x = np.ones((5, 4, 80, 80), np.float32)
    doy = np.array([60, 90, 120, 150, 180])
    prob = predict_probability(model, x, doy, window=32, overlap=8, batch_size=4, progress=False)
    assert np.ptp(prob) < 1e-5  # replicate padding: window borders add nothing


def test_whole_vs_windowed_prediction_agree(model):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4, 64, 64)).astype(np.float32)
    doy = np.array([60, 90, 120, 150, 180])
    whole = predict_probability(model, x, doy, window=64, overlap=0, batch_size=1, progress=False)
    tiled = predict_probability(model, x, doy, window=32, overlap=12, batch_size=4, progress=False)
    assert np.abs(whole - tiled)[4:-4, 4:-4].mean() < 0.02


@pytest.mark.parametrize("series_skip", [False, True])
def test_inference_path_gives_the_training_paths_features(series_skip):
    """Without gradients the temporal encoder runs on chunks of pixel series in channels-last
    layout (issue 22); its features must be the ones training computes, across chunk edges
    (40 x 40 px > one chunk) and for windows with their own dates."""
    torch.manual_seed(3)
    model = SpatioTemporalNet(ModelConfig(in_bands=4, width=16, heads=2, series_skip=series_skip, n_dates=6)).eval()
    with torch.no_grad():
        model.gamma.fill_(0.7)  # the spatial context counts (it starts at 0)
    x = torch.randn(2, 6, 4, 40, 40)
    doy = torch.tensor([[0.0, 20, 40, 60, 80, 100], [5.0, 15, 45, 70, 90, 130]])
    with torch.enable_grad():
        trained_path = model.features(x, doy).detach()
    with torch.inference_mode():
        inference_path = model.features(x, doy)
    assert inference_path.shape == (2, 40, 40, 16)
    np.testing.assert_allclose(inference_path.numpy(), trained_path.numpy(), atol=1e-5)


def test_gap_token_hides_gap_filled_values_from_both_paths():
    """With `gap_token`, what fills a pixel-date without a clear observation does not reach the
    features (training and inference paths alike); without it, it does."""
    torch.manual_seed(5)
    x = torch.randn(1, 6, 4, 12, 12)
    doy = torch.tensor([[0.0, 20, 40, 60, 80, 100]])
    gaps = torch.zeros(1, 6, 12, 12, dtype=torch.bool)
    gaps[:, 2:4, :, :6] = True  # two dates of the left half unobserved
    refilled = x.clone()
    refilled[:, 2:4, :, :, :6] = 5.0
    for gap_token in (True, False):
        model = SpatioTemporalNet(ModelConfig(in_bands=4, width=8, heads=2, gap_token=gap_token)).eval()
        with torch.enable_grad():
            trained = model.features(x, doy, gaps).detach(), model.features(refilled, doy, gaps).detach()
        with torch.inference_mode():
            inferred = model.features(x, doy, gaps), model.features(refilled, doy, gaps)
        for first, second in (trained, inferred):
            assert torch.allclose(first, second, atol=1e-5) == gap_token
        np.testing.assert_allclose(inferred[0].numpy(), trained[0].numpy(), atol=1e-5)
