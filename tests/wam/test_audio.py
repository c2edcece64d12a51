"""The audio front-end is computed per clip: a clip's log-mel, logits, WAM maps and baseline maps are the same
alone and inside any batch (torchaudio's ``AmplitudeToDB(top_db)`` takes its floor over the whole tensor it
is given: it used to couple the clips of a batch)."""

from __future__ import annotations

import pytest
import torch

from tests.models import audio_clips
from wam.audio import LogMel, samples_to_frames


@pytest.mark.parametrize("options", [{"top_db": 80.0}, {"floor_db": 5.0}, {}])
def test_log_mel_of_a_clip_does_not_depend_on_its_batch(options):
    frontend = LogMel(n_mels=32, **options)
    x = audio_clips()
    together = frontend(x)
    for i in range(len(x)):
        torch.testing.assert_close(frontend(x[i : i + 1])[0], together[i], atol=1e-5, rtol=0)


def test_floor_db_makes_silence_zero_and_keeps_the_level():
    frontend = LogMel(n_mels=16, floor_db=5.0)
    x = audio_clips()[:1]
    assert frontend(torch.zeros_like(x)).abs().max() == 0
    loud, softer = frontend(x), frontend(0.1 * x)
    assert (loud - softer).max() > 15  # not invariant to the clip's level (20 dB quieter)
    assert (loud >= 0).all()


def test_samples_to_frames_centres_each_frame_on_its_hop():
    """Frame t of a centred STFT sits at sample hop * t (window [512 t - 256, 512 t + 256)): a mask over samples
    [1000, 2000) covers frame 3 fully, frame 2 from 1000 to 1280 and frame 4 from 1792 to 2000."""
    mask = torch.zeros(1, 1, 4096)
    mask[..., 1000:2000] = 1
    frames = samples_to_frames(mask, 512, 9)[0, 0]
    torch.testing.assert_close(frames[:6], torch.tensor([0, 0, 280 / 512, 1, 208 / 512, 0]))
    spectrogram = LogMel(hop_length=512, n_mels=16)(torch.zeros(1, 4096))
    assert spectrogram.shape[-1] == 9
