"""What real data needs and the demo did not: seasons across New Year, observed-only pretraining
targets, a calibrated decision, non-local similarity, a pretrained attention, systematic product errors."""

import numpy as np
import pytest
import torch

from cropmap.config import validate_config
from cropmap.learning.dataset import date_positions, season_days
from cropmap.errors import ConfigError
from cropmap.learning.model import ModelConfig, SpatioTemporalNet
from cropmap.learning.training import best_f1_threshold, decision_threshold, vegetation_mask, visual_similarity_loss

WINTER = np.array(["2022-10-15", "2022-11-15", "2022-12-15", "2023-01-15", "2023-02-15"], "datetime64[ns]")


def test_dates_of_a_season_across_new_year_stay_in_order():
    days = season_days(WINTER, "2022-10-01")
    np.testing.assert_array_equal(days, [14, 45, 75, 106, 137])
    assert np.all(np.diff(days) > 0)
    day_of_year = date_positions(WINTER, season_start="2022-10-01", encoding="day_of_year")
    assert np.any(np.diff(day_of_year) < 0)  # what the old encoding did: January came before October


def test_a_season_longer_than_a_year_is_a_config_error(minimal_config):
    minimal_config["areas"]["demo"]["season"] = {"start": "2023-03-01", "end": "2026-10-31"}  # a typo in the year
    with pytest.raises(ConfigError, match=r"areas.demo.season.end: .* lasts 1340 days; a season spans at most a year"):
        validate_config(minimal_config)


def test_pretraining_masks_only_clear_observations():
    rng = np.random.default_rng(0)
    patches = np.zeros((2, 3, 4, 8, 8), np.int16)
    patches[:, :, 2] = 300  # red
    patches[:, :, 3] = 4000  # nir: NDVI 0.86, vegetated everywhere
    observed = rng.uniform(size=(2, 3, 8, 8)) < 0.5
    mask = vegetation_mask(patches, ["B02", "B03", "B04", "B08"], threshold=0.2, observed=observed)
    assert mask.any() and not (mask & ~observed).any()
    assert vegetation_mask(patches, ["B02", "B03", "B04", "B08"], threshold=0.2).all()


def test_threshold_of_best_f1_and_prior_correction():
    probability = np.array([0.1, 0.2, 0.35, 0.4, 0.6, 0.7, 0.9])
    labels = np.array([0, 0, 1, 1, 1, 1, 255])
    assert 0.2 < best_f1_threshold(probability, labels) <= 0.35  # all crop above, no non-crop
    assert best_f1_threshold(probability, np.zeros(7, np.uint8)) == 0.5
    # with a crop share of 30 % among the labels, equal class weights put the decision at p = 0.7
    assert decision_threshold("prior", model=None, items=[], mean=None, std=None, doy=None, device=None,
                              crop_share=0.3) == pytest.approx(0.7)
    assert decision_threshold("none", model=None, items=[], mean=None, std=None, doy=None, device=None,
                              crop_share=0.3) == 0.5


def test_non_local_pairs_pull_distant_look_alikes_together():
    """Two pixels far apart (other patches) with the same series but other predictions: only the
    random pairs across the batch see them."""
    torch.manual_seed(0)
    features = torch.randn(2, 6, 8, 8) * 3
    features[1, :, 7, 7] = features[0, :, 0, 0]
    prob = torch.full((2, 2, 8, 8), 0.5)
    prob[0, :, 0, 0] = torch.tensor([0.0, 1.0])
    prob[1, :, 7, 7] = torch.tensor([1.0, 0.0])
    features.requires_grad_(False)
    prob.requires_grad_(True)
    flat_a = 0 * 64 + 0
    flat_b = 1 * 64 + 63
    total = 0.0
    for _ in range(20):  # enough draws that the pair is among them
        loss = visual_similarity_loss(prob, features, sigma=0.5, pairs=20000)
        grad, = torch.autograd.grad(loss, prob)
        total += grad.permute(0, 2, 3, 1).reshape(-1, 2)[[flat_a, flat_b]].abs().sum().item()
    assert total > 0
    local, = torch.autograd.grad(visual_similarity_loss(prob, features, sigma=0.5, pairs=0), prob)
    # the look-alikes' own neighbours are unlike them: without random pairs they are left alone
    assert local.permute(0, 2, 3, 1).reshape(-1, 2)[[flat_a, flat_b]].abs().sum().item() < 1e-3 * total


@pytest.mark.parametrize("through_attention", [True, False])
def test_pretraining_trains_the_spatial_attention(through_attention):
    model = SpatioTemporalNet(ModelConfig(in_bands=4, width=8, heads=2, attention_in_reconstruction=through_attention))
    with torch.no_grad():
        model.gamma.fill_(0.5)
    x, doy = torch.randn(2, 3, 4, 8, 8), torch.tensor([[10.0, 40.0, 70.0]] * 2)
    mask = torch.rand(2, 3, 8, 8) < 0.4
    model.reconstruct(x, doy, mask)[mask[:, :, None].expand(-1, -1, 4, -1, -1)].pow(2).mean().backward()
    trained = [p.grad is not None and p.grad.abs().sum() > 0 for p in (model.query.weight, model.key.weight, model.gamma)]
    assert all(trained) if through_attention else not any(trained)


def test_systematic_product_errors(tmp_path):
    """WorldCover misses every soybean field; Esri calls more grassland crop; GLAD sits 30 m east."""
    import rasterio

    from cropmap.demo.landscape import make_landscape
    from cropmap.demo.products import write_products
    from cropmap.grid import AreaGrid, Tile

    grid = AreaGrid((Tile(136, 850, "EPSG:32614", 10.0, 320),))
    land = make_landscape(grid.shape, np.random.default_rng(3), crop_share=0.6)
    random = write_products(land, grid, tmp_path / "random", np.random.default_rng(1))
    systematic = write_products(land, grid, tmp_path / "systematic", np.random.default_rng(1), errors="systematic")
    from cropmap.labels.products import legend_for, product_on_tile, product_sources

    tile = grid.tiles[0]

    def crop(path, kind):
        return product_on_tile(product_sources({"path": str(path)}, tile), legend_for({"type": kind}), tile)

    soy, grass = land.landcover == 2, land.landcover == 5
    assert np.mean(crop(random["worldcover"], "esa-worldcover")[soy] == 1) > 0.5
    assert np.mean(crop(systematic["worldcover"], "esa-worldcover")[soy] == 1) < 0.1
    assert np.mean(crop(systematic["esri"], "esri-lulc")[grass] == 1) > np.mean(crop(random["esri"], "esri-lulc")[grass] == 1) + 0.03
    with rasterio.open(random["glad"]) as a, rasterio.open(systematic["glad"]) as b:
        assert b.transform.c - a.transform.c == pytest.approx(30.0)


def test_a_dynamic_world_fill_is_no_vote():
    from cropmap.labels.products import legend_for, recode

    values = np.array([[4, 0, 2, 255]], np.uint8)  # crops, water, grass, fill
    np.testing.assert_array_equal(recode(values, legend_for({"type": "dynamic-world"})), [[1, 0, 0, 255]])


def test_a_balanced_threshold_does_not_follow_the_labels_share_of_crop():
    """Youden's J puts the decision between the classes whatever their shares; F1 moves it
    towards crop when crop is the majority of the labels."""
    from cropmap.learning.training import balanced_threshold

    rng = np.random.default_rng(0)
    crop, other = rng.normal(0.65, 0.1, 9000), rng.normal(0.35, 0.1, 1000)  # 90 % crop
    probability = np.clip(np.concatenate([crop, other]), 0, 1)
    labels = np.concatenate([np.ones(9000, np.uint8), np.zeros(1000, np.uint8)])
    assert abs(balanced_threshold(probability, labels) - 0.5) <= 0.03
    assert best_f1_threshold(probability, labels) < 0.45
    assert balanced_threshold(probability, np.ones(10000, np.uint8)) == 0.5


def test_generalised_cross_entropy_bounds_what_a_wrong_label_costs():
    from cropmap.learning.training import label_loss

    weight = torch.ones(2)
    labels = torch.tensor([[[0, 1, 255]]])
    logits = torch.tensor([[-20.0, 20.0, 0.0], [20.0, -20.0, 0.0]]).reshape(1, 2, 1, 3)  # both labels confidently wrong
    ce = label_loss(logits, labels, class_weight=weight)
    gce = label_loss(logits, labels, class_weight=weight, kind="gce", q=0.7)
    assert ce.item() > 10 and gce.item() <= 1 / 0.7 + 1e-6
    right = label_loss(-logits, labels, class_weight=weight, kind="gce", q=0.7)
    assert right.item() < 1e-3  # labelled pixels predicted right cost nothing; 255 is ignored
    mild = logits / 10  # q -> 0 is the cross-entropy
    assert torch.isclose(label_loss(mild, labels, class_weight=weight, kind="gce", q=1e-4),
                         label_loss(mild, labels, class_weight=weight), rtol=1e-2)


def test_cosine_schedule_warms_up_then_decays():
    from cropmap.learning.training import learning_rate_factor

    assert [learning_rate_factor(s, 100, "constant") for s in (1, 50, 100)] == [1.0, 1.0, 1.0]
    factors = [learning_rate_factor(s, 100, "cosine") for s in range(1, 101)]
    assert factors[0] == pytest.approx(0.2) and factors[4] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(factors[4:], factors[5:])) and factors[-1] < 1e-3
