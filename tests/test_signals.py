"""Audio and video signals: I/O round trips (WAV through soundfile; GIF, MP4 and frame folders through imageio),
SNR/PSNR known answers, the built-in clip, the window sampler, model sizing; then ``experiments/fit_signal.py`` as
subprocesses: tiny audio and video fits read back from their files, and one-line errors (exit 2) for bad input.

Signals are tiny (2,048 audio samples, a few frames of 14x25 pixels); the script runs start together in one
fixture, two at a time.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import jax
import numpy as np
import pytest
import skimage.data
import soundfile
from conftest import run_script, run_scripts

from inr_utils.audio import audio_psnr, audio_to_signal, load_audio, save_audio, signal_to_audio, snr
from inr_utils.errors import InputError
from inr_utils.images import save_image
from inr_utils.metrics import psnr
from inr_utils.samplers import SAMPLERS, signal_to_data
from inr_utils.signal_crops import axis_values
from inr_utils.signals import SignalSpec, load_signal, mlp_width_for, plan_model, read_spec, write_signal_outputs
from inr_utils.video import builtin_clip, frame_psnr, load_video, save_video

TINY_GIF = Path(skimage.data.__file__).parent / "no_time_for_that_tiny.gif"  # 24 frames of 25x14, in the wheel
RATE = 8000


def tone(n: int = 2048, channels: int = 1) -> np.ndarray:
    """Two tones (220 and 330 Hz at 8 kHz), float32 ``(n, channels)`` in [-0.8, 0.8]."""
    t = np.arange(n) / RATE
    x = 0.5 * np.sin(2 * np.pi * 220 * t) + 0.3 * np.sin(2 * np.pi * 330 * t + 1.0)
    return np.repeat(x[:, None], channels, axis=1).astype(np.float32)


@pytest.fixture(scope="module")
def tone_wav(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "tone.wav"
    soundfile.write(path, tone(), RATE, subtype="PCM_16")
    return path


# --------------------------------------------------------------------------------------------- measures


def test_snr_and_psnr_known_answers():
    target = np.array([1.0, -1.0, 1.0, -1.0], np.float32)
    pred = 0.9 * target  # error 0.1 everywhere: noise power 0.01 of signal power 1
    assert snr(pred, target) == pytest.approx(20.0, abs=1e-4)
    assert audio_psnr(pred, target) == pytest.approx(10 * math.log10(4 / 0.01), abs=1e-4)  # 26.02 dB
    # the waveform PSNR (range 2) is the [0, 1] PSNR of the fitted signal
    assert audio_psnr(pred, target) == pytest.approx(float(psnr(audio_to_signal(pred), audio_to_signal(target))),
                                                     abs=1e-3)
    assert snr(target, target) == math.inf and audio_psnr(target, target) == math.inf
    np.testing.assert_allclose(signal_to_audio(audio_to_signal(target)), target)


def test_frame_psnr_known_answer():
    target = np.full((3, 4, 5, 3), 0.5, np.float32)
    pred = target.copy()
    pred[0] += 0.1  # 20 dB
    pred[1] += 0.01  # 40 dB
    np.testing.assert_allclose(frame_psnr(pred, target)[:2], [20.0, 40.0], atol=1e-4)
    assert frame_psnr(pred, target)[2] == math.inf


# --------------------------------------------------------------------------------------------- audio I/O


def test_wav_round_trip(tmp_path, tone_wav):
    audio = load_audio(tone_wav)
    assert audio.samples.shape == (2048, 1) and audio.samples.dtype == np.float32 and audio.sample_rate == RATE
    np.testing.assert_allclose(audio.samples, tone(), atol=1 / 32767)  # 16-bit quantisation
    stereo = np.concatenate([tone(), -tone()], axis=1)
    save_audio(tmp_path / "stereo.wav", stereo, 22050)
    back = load_audio(tmp_path / "stereo.wav")
    assert back.sample_rate == 22050 and back.samples.dtype == np.float32
    np.testing.assert_array_equal(back.samples, stereo)  # float WAV: exact
    part = load_audio(tmp_path / "stereo.wav", offset=100 / 22050, duration=50 / 22050)
    np.testing.assert_array_equal(part.samples, stereo[100:150])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files left


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"), ("folder", "is a folder"), (b"", "cannot read audio"),
    (b"RIFF\x10\x00\x00\x00WAVEfmt garbage", "cannot read audio"), (b"\x00" * 300, "cannot read audio"),
])
def test_bad_wav_is_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.wav"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as err:
        load_audio(path)
    assert "\n" not in str(err.value)


# --------------------------------------------------------------------------------------------- video I/O


def test_tiny_gif_reads_as_frames():
    video = load_video(TINY_GIF)
    assert video.frames.shape == (24, 25, 14, 3) and video.frames.dtype == np.float32
    assert 0.0 <= video.frames.min() and video.frames.max() <= 1.0 and video.fps == pytest.approx(1000 / 70)
    assert load_video(TINY_GIF, max_frames=5, frame_step=2).frames.shape == (5, 25, 14, 3)
    assert load_video(TINY_GIF, max_size=10).frames.shape == (24, 10, 6, 3)


def test_video_round_trips(tmp_path):
    frames = builtin_clip(6, 16, 24).frames
    save_video(tmp_path / "v.gif", frames, 10.0)
    gif = load_video(tmp_path / "v.gif")
    assert gif.frames.shape == frames.shape and gif.fps == pytest.approx(10.0)
    assert float(np.min(frame_psnr(gif.frames, frames))) > 25  # GIF's 256-colour palette
    save_video(tmp_path / "v.mp4", frames, 10.0)
    mp4 = load_video(tmp_path / "v.mp4")
    assert mp4.frames.shape == frames.shape and mp4.fps == pytest.approx(10.0)
    assert float(np.min(frame_psnr(mp4.frames, frames))) > 25  # lossy H.264
    odd = builtin_clip(2, 15, 21).frames
    save_video(tmp_path / "odd.mp4", odd, 10.0)  # odd sides padded by one repeated row/column
    assert load_video(tmp_path / "odd.mp4").frames.shape == (2, 16, 22, 3)
    folder = tmp_path / "frames"
    folder.mkdir()
    for k, frame in enumerate(frames):
        save_image(folder / f"{k:03d}.png", frame)
    np.testing.assert_allclose(load_video(folder).frames, frames, atol=0.5 / 255 + 1e-6)  # 8-bit PNGs
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_bad_videos_are_one_clear_error(tmp_path):
    (tmp_path / "bad.mp4").write_bytes(b"not a video" * 50)
    (tmp_path / "bad.gif").write_bytes(b"GIF89a" + b"x" * 100)
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    save_image(mixed / "a.png", np.zeros((4, 4, 3), np.float32))
    save_image(mixed / "b.png", np.zeros((4, 5, 3), np.float32))
    (tmp_path / "empty").mkdir()
    cases = {"missing.mp4": "does not exist", "bad.mp4": "cannot read video", "bad.gif": "cannot read video",
             "mixed": "differ in size", "empty": "no frame images"}
    for name, message in cases.items():
        with pytest.raises(InputError, match=message) as err:
            load_video(tmp_path / name)
        assert "\n" not in str(err.value)
    with pytest.raises(InputError, match="use .mp4 or .gif"):
        save_video(tmp_path / "x.avi", np.zeros((2, 4, 4, 3), np.float32), 10.0)


def test_builtin_clip_pans_and_zooms_across_a_photo():
    photo = np.random.default_rng(0).uniform(size=(120, 160, 3)).astype(np.float32)
    clip = builtin_clip(5, 12, 18, photo=photo)
    assert clip.frames.shape == (5, 12, 18, 3) and clip.frames.dtype == np.float32
    assert 0.0 <= clip.frames.min() and clip.frames.max() <= 1.0
    assert all(np.abs(clip.frames[k + 1] - clip.frames[k]).mean() > 0.01 for k in range(4))  # the camera moves
    default = builtin_clip(3, 8, 12)  # a DIV2K photo where shared, else the astronaut: a real photo either way
    assert default.frames.shape == (3, 8, 12, 3) and default.frames.std() > 0.05


# --------------------------------------------------------------------------------------------- sampling, sizing


def test_window_sampler_draws_contiguous_windows():
    signal = np.arange(50, dtype=np.float32)[:, None] / 50
    data = signal_to_data(signal)
    sample = jax.jit(SAMPLERS["window"](8))
    counts = np.zeros(50)
    for seed in range(200):
        coords, values = sample(data, jax.random.key(seed))
        index = (int(round(float(values[0, 0]) * 50)) + np.arange(8)) % 50  # contiguous, wrapping at the end
        np.testing.assert_array_equal(values, signal[index])
        np.testing.assert_array_equal(coords, data.coords[index])
        counts[index] += 1
    assert counts.min() > 0 and counts[:4].mean() > 0.6 * counts.mean()  # the ends are trained as often


def test_mlp_width_meets_the_budget():
    assert mlp_width_for(200_000, 2, 3) == 256  # SIREN's 1+3 x 256
    for in_dim, channels, params in ((1, 1, 5000), (3, 3, 200_000), (1, 2, 50_000)):
        w = mlp_width_for(params, in_dim, channels)

        def count(w, in_dim=in_dim, channels=channels):
            return (in_dim + 1) * w + 3 * (w * w + w) + (w + 1) * channels

        assert count(w) <= params < count(w + 1)


def test_model_plans_meet_the_budget(tone_wav):
    audio = load_signal(SignalSpec("audio", str(tone_wav)))
    plan = plan_model("mlp", audio, 5000)
    assert plan.settings["model"] == "siren" and plan.settings["first_omega0"] == 205.0 and plan.shape == (2048,)
    plan = plan_model("lg", audio, 20_000)
    assert plan.settings["partitions"] == (32,) and plan.shape == (2048,)  # 32 partitions of audio by default
    assert "partitions 32" in plan.description
    video = load_signal(SignalSpec("video", str(TINY_GIF)))
    plan = plan_model("lc", video, 50_000)
    assert plan.settings["model"] == "lc_siren" and plan.settings["partitions"] == (5, 8, 8)  # the default grid
    assert plan.shape == (20, 24, 8)  # trimmed to multiples of it
    for kwargs, message in (({"partitions": (2, 2)}, "one positive count per sample axis"),
                            ({"partitions": (30, 1, 1)}, "more partitions than samples"),
                            ({"partition_size": (1, 1, 1)}, "too small")):
        with pytest.raises(InputError, match=message):
            plan_model("lg", video, 5000, **kwargs)


def test_crop_along_flag_values():
    assert axis_values("2:0,7") == (2, [0, 7])
    with pytest.raises(ValueError, match="AXIS:I,J"):
        axis_values("0-7")


def test_outputs_of_an_audio_signal(tmp_path, tone_wav):
    signal = load_signal(SignalSpec("audio", str(tone_wav)))
    assert signal.values.shape == (2048, 1) and signal.rate == RATE
    recon = np.clip(signal.values + 0.005, 0, 1)
    measures = write_signal_outputs(tmp_path, signal, recon)
    back = load_audio(tmp_path / "reconstruction.wav")
    assert back.samples.shape == (2048, 1) and back.sample_rate == RATE
    assert measures["psnr_audio_db"] == pytest.approx(10 * math.log10(4 / 0.01 ** 2), abs=0.01)  # error 0.01
    assert (tmp_path / "audio.png").stat().st_size > 0


# --------------------------------------------------------------------------------------------- the script


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tone_wav):
    """Every fit_signal.py run of this module, started together (two at a time)."""
    root = tmp_path_factory.mktemp("runs")
    corrupt = root / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x10\x00\x00\x00WAVEfmt garbage")
    blocker = root / "file"
    blocker.write_text("x")
    common = ["--steps", "150", "--no-progress", "--steps-per-call", "50"]
    photo = root / "photo.png"
    save_image(photo, skimage.data.astronaut()[::16, ::16] / 255.0)  # 32x32
    cases = {
        "image": ("fit_signal.py", "--signal", "image", "--input", photo, "--params", "6000", "--partitions", "2", "2",
                  "--out", root / "image", "--steps", "10", "--no-progress"),
        "audio": ("fit_signal.py", "--signal", "audio", "--input", tone_wav, "--params", "5000", "--mode", "mlp",
                  "--first-omega0", "300", "--out", root / "audio", *common),
        "video": ("fit_signal.py", "--signal", "video", "--input", TINY_GIF, "--max-frames", "4", "--params", "5000",
                  "--mode", "lg", "--partitions", "2", "3", "2", "--lr", "1e-3", "--out", root / "video", *common),
        "corrupt_wav": ("fit_signal.py", "--signal", "audio", "--input", corrupt, "--out", root / "x1"),
        "unwritable": ("fit_signal.py", "--signal", "audio", "--input", tone_wav, "--out", blocker / "run"),
        "crop_missing": ("crop.py", root / "nope", "--crop-partitions", "0", "--out", root / "x5"),
    }
    return root, run_scripts(cases, timeout=300)


def test_fit_signal_audio_round_trip(runs, tone_wav):
    root, results = runs
    rc, stdout, stderr = results["audio"]
    assert rc == 0, stderr
    out = root / "audio"
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics == json.loads(stdout.strip().splitlines()[-1])
    back = load_audio(out / "reconstruction.wav")
    original = load_audio(tone_wav)
    assert back.samples.shape == original.samples.shape and back.sample_rate == original.sample_rate
    assert back.samples.dtype == np.float32
    assert metrics["psnr_audio_db"] > 22 and metrics["snr_db"] > 8  # 150 steps of a 5k-parameter SIREN
    assert metrics["snr_db"] == pytest.approx(snr(back.samples, original.samples), abs=0.05)
    assert metrics["sample_rate"] == RATE and metrics["signal"] == "audio" and metrics["mode"] == "mlp"
    config = json.loads((out / "config.json").read_text())
    assert config["sampler"] == "window" and config["batch_size"] == 512  # a quarter of the clip per step
    assert config["lr"] == 1e-4  # the reference code's audio rate
    assert read_spec(out).input == str(tone_wav)
    assert (out / "audio.png").stat().st_size > 0 and list((out / "checkpoints").iterdir())


def test_fit_signal_image_follows_the_reference_conventions(runs):
    root, results = runs
    rc, _, stderr = results["image"]
    assert rc == 0, stderr
    config = json.loads((root / "image" / "config.json").read_text())
    assert config["lr"] == 5e-4  # the reference code's image rate (audio and video: 1e-4)
    assert config["model"]["combine"] == "concat_and_fc" and config["model"]["partitions"] == [2, 2]
    assert "in the global trunk" in stderr and abs(json.loads((root / "image" / "metrics.json").read_text())["params"]
                                                   - 6000) <= 600


def test_fit_signal_video_round_trip(runs):
    root, results = runs
    rc, stdout, stderr = results["video"]
    assert rc == 0, stderr
    assert "lg: partitions 2x3x2 of a 4x24x14 signal" in stderr  # 25 rows trimmed to a multiple of 3
    out = root / "video"
    metrics = json.loads((out / "metrics.json").read_text())
    per_frame = json.loads((out / "frame_psnr.json").read_text())["frame_psnr_db"]
    assert len(per_frame) == 4 and metrics["frames"] == 4 and metrics["shape"] == [4, 24, 14, 3]
    assert metrics["frame_psnr_mean"] == pytest.approx(np.mean(per_frame), abs=0.01)
    assert metrics["frame_psnr_mean"] > 18 and metrics["mode"] == "lg"  # 150 steps of a 5k-parameter LG-SIREN
    assert abs(metrics["params"] - 5000) <= 500  # automatic partitioning: within 10% of the budget
    video = load_video(out / "reconstruction.mp4")
    assert video.frames.shape == (4, 24, 14, 3)
    model = json.loads((out / "config.json").read_text())["model"]
    assert model["in_dim"] == 3 and model["partitions"] == [2, 3, 2] and model["architecture"] == "local_global"
    assert (out / "video.png").stat().st_size > 0


def test_crop_script_removes_the_frame_border_without_changing_the_rest(runs, tmp_path):
    root, results = runs
    assert results["video"][0] == 0, results["video"][2]
    rc, stdout, stderr = run_script("crop.py", root / "video", "--crop-along", "1:0", "--crop-along", "2:0",
                                    "--video-format", "gif", "--out", tmp_path / "crop")
    assert rc == 0, stderr
    metrics = json.loads((tmp_path / "crop" / "metrics.json").read_text())
    assert metrics == json.loads(stdout.strip().splitlines()[-1])
    assert (metrics["partitions_before"], metrics["partitions_after"]) == (12, 4)  # rows 1-2 x column 1 of each frame
    assert metrics["params_after"] < metrics["params_before"]
    assert metrics["max_abs_difference"] <= 1e-6 and metrics["psnr_kept"] == metrics["psnr_kept_uncropped"]
    assert metrics["region_is_box"] and metrics["region_start"] == [0, 8, 7] and metrics["region_shape"] == [4, 16, 7]
    assert load_video(tmp_path / "crop" / "cropped.gif").frames.shape == (4, 16, 7, 3)
    cropped = json.loads((tmp_path / "crop" / "config.json").read_text())["model"]
    assert len(cropped["kept"]) == 4 and read_spec(tmp_path / "crop").kind == "video"  # croppable again


@pytest.mark.parametrize("case, message", [
    ("corrupt_wav", "cannot read audio file"), ("unwritable", "output folder"), ("crop_missing", "does not exist"),
])
def test_fit_signal_bad_input(runs, case, message):
    root, results = runs
    rc, stdout, stderr = results[case]
    assert rc == 2, stderr
    assert message in stderr and "Traceback" not in stderr
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert not any((root / f"x{k}").exists() for k in range(1, 6))  # nothing written


def test_bad_signal_descriptions():
    for spec, message in ((SignalSpec("audio"), "needs --input"), (SignalSpec("speech"), "unknown signal kind"),
                          (SignalSpec("image", downscale=0.5), "--downscale"),
                          (SignalSpec("video", max_frames=0), "--max-frames")):
        with pytest.raises(InputError, match=message):
            load_signal(spec)
