import numpy as np

from cropmap.labels.consensus import consensus_labels


def test_unanimous_rule_with_missing_votes():
    products = np.array([
        [[1, 1, 0, 255, 1, 255]],
        [[1, 0, 0, 1, 255, 255]],
        [[1, 1, 0, 1, 255, 255]],
    ], np.uint8)
    labels, voters, agreeing = consensus_labels(products, min_voters=2)
    np.testing.assert_array_equal(labels[0], [1, 255, 0, 1, 255, 255])
    np.testing.assert_array_equal(voters[0], [3, 3, 3, 2, 1, 0])
    np.testing.assert_array_equal(agreeing[0], [3, 2, 3, 2, 1, 0])


def test_min_voters_one_accepts_single_product():
    products = np.array([[[1]], [[255]]], np.uint8)
    assert consensus_labels(products, min_voters=1)[0][0, 0] == 1
    assert consensus_labels(products, min_voters=2)[0][0, 0] == 255


def test_k_of_n_and_weighted_rules():
    from cropmap.labels.consensus import consensus_labels

    products = np.array([[[1, 1, 0]], [[1, 0, 0]], [[0, 0, 255]]], np.uint8)
    labels, _, _ = consensus_labels(products, min_voters=2, rule="k_of_n", min_agreement=2)
    np.testing.assert_array_equal(labels[0], [1, 0, 0])
    labels, _, _ = consensus_labels(products, min_voters=2, rule="weighted", weights=[2, 1, 1],
                                    weighted_threshold=0.75)
    np.testing.assert_array_equal(labels[0], [1, 255, 0])  # 3/4 crop, 2/4 crop, 0/3 crop


def test_clean_labels_erodes_borders_and_drops_small_patches():
    from cropmap.labels.consensus import clean_labels

    labels = np.zeros((9, 9), np.uint8)
    labels[:, 5:] = 1
    labels[1, 1] = 1  # a one-pixel crop patch inside non-crop
    eroded = clean_labels(labels, erode_px=1)
    assert (eroded[:, 4:6] == 255).all()  # both sides of the border dropped
    assert eroded[4, 7] == 1 and eroded[4, 2] == 0
    cleaned = clean_labels(labels, min_patch_px=2)
    assert cleaned[1, 1] == 255 and cleaned[4, 7] == 1


def test_label_quality_summary_reports_accuracy_per_source():
    from cropmap.labels.quality import summarise_labels

    reference = np.array([[1, 1, 0, 0]], np.uint8)
    a = np.array([[1, 1, 1, 0]], np.uint8)
    b = np.array([[1, 0, 0, 0]], np.uint8)
    labels = np.array([[1, 255, 255, 0]], np.uint8)
    summary = summarise_labels(labels, {"a": a, "b": b}, reference)
    assert summary["labelled_fraction"] == 0.5
    assert summary["accuracy"] == {"consensus": 1.0, "a": 0.75, "b": 0.75}
    assert summary["pairwise_agreement"]["matrix"][0][1] == 0.5
