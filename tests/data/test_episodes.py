"""K-shot episodes from a small prepared dataset of real frames."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from fake_dataset import DEFAULT_CLIPS, FakeClip, build_fake_dataset
from torch.utils.data import DataLoader, DistributedSampler

from talkinghead.data import dataset_format as fmt
from talkinghead.data.episodes import EpisodeDataset
from talkinghead.data.rasterize import image_to_tensor, rasterize_landmarks
from talkinghead.data.segmentation_classes import CELEBAMASK_CLASSES


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return build_fake_dataset(tmp_path_factory.mktemp("episodes") / "dataset")


@pytest.fixture(scope="module")
def root_without_segmentation(tmp_path_factory):
    return build_fake_dataset(tmp_path_factory.mktemp("episodes") / "no_seg", segmentation=False)


def test_item_shapes_ranges_and_types(root):
    episodes = EpisodeDataset(root, k=4, landmark_style="fsth")
    assert len(episodes) == 3  # the train clips
    item = episodes[1]
    assert item["source_images"].shape == (4, 3, 64, 64)
    assert item["source_landmarks"].shape == (4, 3, 64, 64)
    assert item["target_image"].shape == (3, 64, 64)
    assert item["target_landmarks"].shape == (3, 64, 64)
    assert item["target_segmentation"].shape == (64, 64)
    assert item["source_indices"].shape == (4,)
    for key in ("source_images", "source_landmarks", "target_image", "target_landmarks"):
        assert item[key].dtype == torch.float32
        assert -1.0 <= item[key].min() and item[key].max() <= 1.0, key
    for key in ("target_segmentation", "identity_index", "clip_index", "source_indices", "target_index"):
        assert item[key].dtype == torch.int64, key
    labels = item["target_segmentation"]
    assert 0 <= labels.min() and labels.max() < len(CELEBAMASK_CLASSES) and (labels > 0).any()
    assert item["clip_index"] == 1


def test_item_holds_the_sampled_frames_and_their_landmarks(root):
    episodes = EpisodeDataset(root, k=3, seed=5, landmark_style="fsth")
    episodes.set_epoch(2)
    item = episodes[2]
    sources, target = episodes.sample_frames(2)
    assert item["source_indices"].tolist() == sources.tolist() and item["target_index"] == target
    clip = episodes.clip(2)
    assert torch.equal(item["target_image"], image_to_tensor(clip.frame(target)))
    assert torch.equal(item["source_images"][1], image_to_tensor(clip.frame(int(sources[1]))))
    expected = image_to_tensor(rasterize_landmarks(clip.landmarks68[target], 64, "fsth"))
    assert torch.equal(item["target_landmarks"], expected)
    assert torch.equal(item["target_segmentation"], torch.from_numpy(clip.segmentation(target).astype(np.int64)))


def test_target_is_never_a_source_and_sources_are_distinct(root):
    episodes = EpisodeDataset(root, k=7, landmark_style="fsth")  # 8 frames per clip: every frame is used
    for seed in range(10):
        episodes.seed = seed
        for epoch in range(10):
            for index in range(len(episodes)):
                sources, target = episodes.sample_frames(index, epoch)
                assert target not in sources
                assert len(set(sources.tolist())) == 7 and (np.diff(sources) > 0).all()
                assert 0 <= sources.min() and sources.max() < 8 and 0 <= target < 8


def test_same_seed_and_epoch_give_the_same_episode(root):
    first, second = EpisodeDataset(root, seed=3, landmark_style="fsth"), EpisodeDataset(root, seed=3, landmark_style="fsth")
    first.set_epoch(4)
    second.set_epoch(4)
    a, b = first[0], second[0]
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def episode(episodes: EpisodeDataset, index: int, epoch: int) -> tuple[int, ...]:
    sources, target = episodes.sample_frames(index, epoch)
    return (*sources.tolist(), target)


def test_epochs_and_seeds_change_the_episodes(root):
    episodes = EpisodeDataset(root, k=2, landmark_style="fsth")
    assert len({episode(episodes, 0, epoch) for epoch in range(8)}) > 4
    for epoch in (1, 2):
        episodes.set_epoch(epoch)
        assert episodes.epoch == epoch
        item = episodes[0]
        assert (*item["source_indices"].tolist(), int(item["target_index"])) == episode(episodes, 0, epoch)
    other_seed = EpisodeDataset(root, k=2, seed=99, landmark_style="fsth")
    pairs = [(i, epoch) for i in range(3) for epoch in range(4)]
    assert [episode(episodes, *p) for p in pairs] != [episode(other_seed, *p) for p in pairs]


def test_identity_index_follows_the_sorted_identities(root):
    train = EpisodeDataset(root, landmark_style="fsth")
    assert train.identities == ["lp_d12", "lp_d18"] and train.num_identities == 2
    indices = [int(train[i]["identity_index"]) for i in range(len(train))]
    assert indices == [0, 0, 1]  # two clips of lp_d12, then lp_d18
    for i, index in enumerate(indices):
        assert train.identities[index] == train.records[i].identity == DEFAULT_CLIPS[i].identity
    everything = EpisodeDataset(root, split=None, landmark_style="fsth")
    assert everything.num_identities == 3 and len(everything) == 4
    assert int(everything[3]["identity_index"]) == everything.identities.index("tpsmm")


def test_distributed_sampler_with_two_replicas_covers_every_clip(root):
    episodes = EpisodeDataset(root, split=None, landmark_style="fsth")
    for epoch in range(3):
        seen = set()
        for rank in range(2):
            sampler = DistributedSampler(episodes, num_replicas=2, rank=rank, shuffle=True, seed=0)
            sampler.set_epoch(epoch)
            indices = list(sampler)
            assert len(indices) == 2
            seen.update(indices)
        assert seen == set(range(len(episodes)))


def test_dataloader_workers_follow_set_epoch(root):
    episodes = EpisodeDataset(root, k=4, landmark_style="fsth")
    loader = DataLoader(episodes, batch_size=3, num_workers=2, persistent_workers=True)
    for epoch in range(2):
        episodes.set_epoch(epoch)
        (batch,) = list(loader)
        assert batch["source_images"].shape == (3, 4, 3, 64, 64)
        expected = [episodes.sample_frames(i, epoch)[1] for i in range(3)]
        assert batch["target_index"].tolist() == expected


def test_resizing_and_dense_style(root):
    episodes = EpisodeDataset(root, k=2, size=32, landmark_style="dense")
    item = episodes[0]
    assert item["source_images"].shape == (2, 3, 32, 32)
    assert item["target_landmarks"].shape == (3, 32, 32)
    labels = item["target_segmentation"]
    assert labels.shape == (32, 32)
    original = episodes.clip(0).segmentation(int(item["target_index"]))
    assert set(labels.unique().tolist()) <= set(np.unique(original).tolist())  # nearest: no new labels
    dense = rasterize_landmarks(episodes.clip(0).dense_landmarks[int(item["target_index"])], 32, "dense", 64)
    assert torch.equal(item["target_landmarks"], image_to_tensor(dense))


def test_segmentation_is_optional_unless_required(root_without_segmentation, tmp_path):
    item = EpisodeDataset(root_without_segmentation, landmark_style="fsth")[0]
    assert "target_segmentation" not in item
    with pytest.raises(ValueError, match="no segmentation maps"):
        EpisodeDataset(root_without_segmentation, require_segmentation=True, landmark_style="fsth")
    # The check reads only dataset.json: it fails the same way with every clip missing.
    bare = tmp_path / "bare"
    bare.mkdir()
    for name in (fmt.DATASET_FILE, fmt.MANIFEST_FILE):
        shutil.copy(root_without_segmentation / name, bare / name)
    with pytest.raises(ValueError, match="no segmentation maps"):
        EpisodeDataset(bare, require_segmentation=True, landmark_style="fsth")


def test_clips_with_too_few_frames(tmp_path):
    clips = DEFAULT_CLIPS[:2] + (FakeClip("lp_d18", "short", "liveportrait_d18.mp4", 0.0, 1.0, 3, "train"),)
    root = build_fake_dataset(tmp_path / "short", clips=clips)
    with pytest.raises(ValueError, match=r"lp_d18/short \(3 frames\).*Lower k.*min_frames=5"):
        EpisodeDataset(root, k=4, landmark_style="fsth")
    assert len(EpisodeDataset(root, k=2, landmark_style="fsth")) == 3  # 3 frames are enough for k = 2
    filtered = EpisodeDataset(root, k=4, min_frames=5, landmark_style="fsth")
    assert len(filtered) == 2 and [r.key for r in filtered.skipped] == ["lp_d18/short"]
    assert filtered.num_identities == 2  # lp_d18 keeps its index although its only clip is left out
    with pytest.raises(ValueError, match="at least k \\+ 1 = 5"):
        EpisodeDataset(root, k=4, min_frames=4, landmark_style="fsth")
    with pytest.raises(ValueError, match="every clip"):
        EpisodeDataset(root, k=4, min_frames=9, landmark_style="fsth")


def test_frame_roles_of_evaluation_layouts(tmp_path):
    roles = ["input"] * 2 + ["holdout"] * 6
    root = build_fake_dataset(tmp_path / "roles", frame_roles={"lp_d18/full": roles}, report=False)
    episodes = EpisodeDataset(root, landmark_style="fsth")
    assert episodes.holdout_frames(2).tolist() == [2, 3, 4, 5, 6, 7]
    assert episodes.input_frames(2).tolist() == [0, 1]
    assert episodes.holdout_frames(0).tolist() == [] and episodes.input_frames(0).tolist() == list(range(8))
    # Training episodes may draw any frame, holdout frames included.
    targets = {episodes.sample_frames(2, epoch)[1] for epoch in range(20)}
    assert targets & {2, 3, 4, 5, 6, 7}


def test_invalid_arguments(root):
    with pytest.raises(ValueError, match="no clips in split 'validation'"):
        EpisodeDataset(root, split="validation", landmark_style="fsth")
    with pytest.raises(ValueError, match="unknown landmark style"):
        EpisodeDataset(root, landmark_style="mesh")
    with pytest.raises(ValueError, match="k must be at least 1"):
        EpisodeDataset(root, k=0, landmark_style="fsth")
    with pytest.raises(IndexError):
        EpisodeDataset(root, landmark_style="fsth")[3]


def test_holdout_fraction_keeps_the_tail_of_every_clip_out_of_training(root):
    episodes = EpisodeDataset(root, k=2, holdout_fraction=0.25, landmark_style="fsth")
    for index in range(len(episodes)):
        num_frames = episodes.records[index].num_frames
        held = set(episodes.holdout_frames(index).tolist())
        assert held and max(held) == num_frames - 1 and len(held) == int(np.ceil(0.25 * num_frames))
        for epoch in range(30):
            sources, target = episodes.sample_frames(index, epoch)
            assert not held & {target, *sources.tolist()}
    item = episodes.episode(0, np.array([0, 1, 2]), int(episodes.holdout_frames(0)[0]))
    assert item["source_images"].shape[0] == 3
    assert item["target_index"].item() == episodes.holdout_frames(0)[0]
    with pytest.raises(ValueError, match="holdout_fraction"):
        EpisodeDataset(root, holdout_fraction=1.0, landmark_style="fsth")


def test_index_epoch_pairs_choose_the_epoch_explicitly(root):
    episodes = EpisodeDataset(root, k=2, landmark_style="fsth")
    episodes.set_epoch(0)
    explicit = episodes[(1, 5)]
    episodes.set_epoch(5)
    assert torch.equal(explicit["source_indices"], episodes[1]["source_indices"])
    assert explicit["target_index"] == episodes[1]["target_index"]


def test_the_landmark_style_is_the_caller_s_and_none_draws_no_episode(root):
    """No method's style is assumed: it is required, and a dataset without one reads clips only."""
    with pytest.raises(TypeError, match="landmark_style"):
        EpisodeDataset(root, k=2)
    clips_only = EpisodeDataset(root, k=2, landmark_style=None)
    assert clips_only.clip(0).num_frames > 0
    with pytest.raises(ValueError, match="landmark_style"):
        clips_only[0]
