import torch

from decode import best_path


def test_best_path_merges_repeats_drops_blanks_and_padding():
    blank = 0
    # frames: 5 5 0 5 7 7 0 | padded frames that would say 9
    frames = [5, 5, 0, 5, 7, 7, 0, 9, 9]
    emissions = torch.nn.functional.one_hot(torch.tensor([frames]), 10).float()
    assert best_path(emissions, [7], blank) == [[5, 5, 7]]
    assert best_path(emissions, [9], blank) == [[5, 5, 7, 9]]
