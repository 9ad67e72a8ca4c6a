import numpy as np

from cropmap.consensus import consensus_labels


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
