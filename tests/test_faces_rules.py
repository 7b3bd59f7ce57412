"""Which faces are indexed, how they are cropped, and how face and whole-image scores are fused
(`training.faces`, plain: no database)."""

from __future__ import annotations

import numpy as np
import pytest

from training.faces import DetectedFace, artwork_face_scores, crop_box, face_weights, fuse, select_faces


def test_the_largest_face_or_every_face_above_a_size():
    faces = [
        DetectedFace(1, (0, 0, 30, 30)),  # most probable, middling
        DetectedFace(2, (100, 100, 110, 112)),  # tiny
        DetectedFace(3, (50, 50, 110, 100)),  # largest (60 × 50)
    ]
    assert [f.key for f in select_faces(faces, "largest")] == [3]
    assert [f.key for f in select_faces(faces, "all", min_side=24)] == [3, 1]
    assert [f.key for f in select_faces(faces, "all", min_side=0)] == [3, 1, 2]
    # Equal sizes: the first (the most probable) wins.
    assert select_faces([DetectedFace(7, (0, 0, 10, 10)), DetectedFace(8, (5, 5, 15, 15))])[0].key == 7
    assert select_faces([], "largest") == []
    with pytest.raises(ValueError, match="face policy"):
        select_faces(faces, "biggest")


def test_the_crop_is_a_square_with_context_centred_on_the_face():
    left, top, right, bottom = crop_box((100, 100, 140, 150), 1000, 800, margin=0.4)
    assert right - left == bottom - top == 70  # the longer side (50) × 1.4
    assert (left + right) / 2 == pytest.approx(120, abs=1) and (top + bottom) / 2 == pytest.approx(125, abs=1)


def test_a_crop_at_the_edge_is_shifted_inside_not_cut():
    left, top, right, bottom = crop_box((0, 790, 20, 800), 1000, 800, margin=1.0)
    assert (left, bottom) == (0, 800)
    assert right - left == bottom - top == 40  # still square, whole context kept on the inner side


def test_a_crop_larger_than_the_image_is_the_image():
    assert crop_box((0, 0, 90, 60), 90, 60, margin=0.5) == (0, 0, 90, 60)


def test_a_tiny_face_still_gives_a_pixel_and_bad_boxes_are_refused():
    left, top, right, bottom = crop_box((10.2, 10.2, 10.4, 10.4), 50, 50, margin=0)
    assert right > left and bottom > top
    with pytest.raises(ValueError, match="empty face box"):
        crop_box((10, 10, 10, 20), 50, 50)
    with pytest.raises(ValueError, match="image size"):
        crop_box((0, 0, 1, 1), 0, 50)


def unit(*values):
    vector = np.asarray(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_an_artworks_face_score_is_its_best_face_against_the_query():
    query = np.stack([unit(1, 0, 0)])
    faces = np.stack([unit(1, 1, 0), unit(1, 0, 0), unit(0, 0, 1)])
    scores = artwork_face_scores(query, faces, np.array([0, 0, 2]), n_rows=4)
    assert scores[0] == pytest.approx(1.0)  # the better of its two faces
    assert np.isnan(scores[1]) and np.isnan(scores[3])  # no face
    assert scores[2] == pytest.approx(0.0)
    # Two query faces: the best pair.
    both = artwork_face_scores(np.stack([unit(1, 0, 0), unit(0, 0, 1)]), faces, np.array([0, 0, 2]), 4)
    assert both[2] == pytest.approx(1.0)


def test_fusion_weighs_the_two_scores_and_falls_back_to_the_whole_image():
    whole = np.array([0.9, 0.5, 0.2], dtype=np.float32)
    face = np.array([0.1, 0.9, np.nan], dtype=np.float32)
    assert fuse(whole, face, "whole").tolist() == pytest.approx([0.9, 0.5, 0.2])
    assert fuse(whole, face, "fused", 0.5).tolist() == pytest.approx([0.5, 0.7, 0.2])
    assert fuse(whole, face, "fused", 1.0).tolist() == pytest.approx([0.1, 0.9, 0.2])
    assert fuse(whole, face, "fused", 0.0).tolist() == pytest.approx([0.9, 0.5, 0.2])
    face_only = fuse(whole, face, "face")
    assert face_only[:2].tolist() == pytest.approx([0.1, 0.9]) and face_only[2] == -np.inf
    # A query without a face: every mode ranks by the whole image.
    for mode in ("face", "fused"):
        assert fuse(whole, None, mode).tolist() == pytest.approx(whole.tolist())
        assert fuse(whole, np.full(3, np.nan), mode).tolist() == pytest.approx(whole.tolist())
    # Fusion reorders: the face lifts the second artwork above the first.
    assert np.argmax(fuse(whole, face, "fused", 0.5)) == 1


def test_bad_modes_and_weights_are_refused():
    with pytest.raises(ValueError, match="mode"):
        fuse(np.zeros(2), None, "faces")
    with pytest.raises(ValueError, match="weight"):
        fuse(np.zeros(2), None, "fused", 1.5)


def test_small_faces_weigh_less_in_fusion():
    sides = np.array([200.0, 48.0, np.nan, 10.0], dtype=np.float32)
    weights = face_weights(0.5, query_side=120.0, candidate_sides=sides, full_side=96)
    assert weights.tolist() == pytest.approx([0.5, 0.25, 0.0, 0.5 * 10 / 96])
    # The query's face bounds every candidate's: a small query face weighs little against any.
    assert face_weights(0.5, 24.0, sides, 96).tolist() == pytest.approx([0.125, 0.125, 0.0, 0.5 * 10 / 96])
    assert face_weights(0.5, 24.0, sides, 0).tolist() == pytest.approx([0.5, 0.5, 0.0, 0.5])  # plain
    whole = np.array([0.4, 0.4, 0.4, 0.4], dtype=np.float32)
    face = np.array([0.9, 0.9, np.nan, 0.9], dtype=np.float32)
    fused = fuse(whole, face, "fused", face_weights(0.5, 120.0, sides, 96))
    assert fused.tolist() == pytest.approx([0.65, 0.525, 0.4, 0.4 + 0.5 * 10 / 96 * 0.5])
    with pytest.raises(ValueError, match="weight"):
        face_weights(1.2, 10, sides, 96)
