"""Face-detector candidates for ``bench data faces`` measured on the astronaut test clip.

Usage: python benchmarks/faces_detectors.py [--frames 80] [--only TEXT,...]

For each candidate that is importable here (dlib's HOG detector from ``dlib-bin``; dlib's CNN
detector with weights from ``face-recognition-models``; OpenCV's Haar cascades, which ship in
``opencv-python-headless`` < 5 only) it prints, on clips of 128 and 256 px frames: detection rate
(frames showing the face whose largest detection has its centre inside the true box), mean IoU of
that box with the true box, the test's crop measure (true box >= 90% inside the 1.3x square and
centre within 0.15 box sizes), false detections on frames with no face, and milliseconds per frame,
plus the time per 640x480 frame (a typical FF++ c23 frame size).
"""

import argparse
import time

import numpy as np

from bench.data.faces.crop import centre, crop_quality, iou, largest, square
from bench.data.faces.synthetic import astronaut_clip, render


def candidates() -> dict:
    found = {}
    try:
        import dlib

        from bench.data.faces.detect import FaceDetector

        chosen = FaceDetector()
        found[f"bench: dlib {dlib.__version__} HOG, upsample 0, else 1"] = lambda img: [b for b, _ in chosen(img)]

        hog = dlib.get_frontal_face_detector()
        for up in (0, 1):
            found[f"dlib {dlib.__version__} HOG, upsample {up}"] = (
                lambda img, up=up: [(r.left(), r.top(), r.right() + 1, r.bottom() + 1) for r in hog(img, up)])
        try:
            import face_recognition_models as frm

            cnn = dlib.cnn_face_detection_model_v1(frm.cnn_face_detector_model_location())
            for up in (0, 1):
                found[f"dlib {dlib.__version__} CNN (mmod), upsample {up}"] = (
                    lambda img, up=up: [(d.rect.left(), d.rect.top(), d.rect.right() + 1, d.rect.bottom() + 1)
                                        for d in cnn(img, up)])
        except ImportError:
            print("face-recognition-models not installed: dlib's CNN detector not measured")
    except ImportError:
        print("dlib not installed: dlib's detectors not measured")
    try:
        import cv2

        for name in ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml"):
            cascade = cv2.CascadeClassifier(cv2.data.haarcascades + name)
            found[f"OpenCV {cv2.__version__} Haar {name.split('_', 2)[2][:-4]}"] = (
                lambda img, c=cascade: [(x, y, x + w, y + h) for x, y, w, h in
                                        c.detectMultiScale(cv2.cvtColor(img, cv2.COLOR_RGB2GRAY), 1.1, 5,
                                                           minSize=(20, 20))])
    except (ImportError, AttributeError):
        print("OpenCV with Haar cascades (opencv-python-headless < 5) not installed: Haar not measured")
    return found


def measure(detect, frames, boxes) -> dict:
    hits, ious, good, false, seconds = 0, [], 0, 0, 0.0
    for frame, truth in zip(frames, boxes):
        start = time.perf_counter()
        found = detect(frame)
        seconds += time.perf_counter() - start
        k = largest(found)
        if truth is None:
            false += k is not None
            continue
        if k is None:
            continue
        cx, cy = centre(found[k])
        if truth[0] <= cx <= truth[2] and truth[1] <= cy <= truth[3]:
            hits += 1
            ious.append(iou(found[k], truth))
        inside, offset = crop_quality(truth, square(found[k], 1.3))
        good += inside >= 0.9 and offset <= 0.15
    shown = sum(b is not None for b in boxes)
    return {"rate": hits / shown, "iou": float(np.mean(ious)) if ious else 0.0, "crop_ok": good / shown,
            "false": false, "hidden": len(boxes) - shown, "ms": 1000 * seconds / len(frames)}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=80)
    parser.add_argument("--only", default="", help="comma-separated texts: measure only candidates whose name has one")
    args = parser.parse_args()
    hidden = range(args.frames // 2, args.frames // 2 + args.frames // 10)
    clips = {size: astronaut_clip(args.frames, size, sides=(56 * size / 128, 80 * size / 128), hidden=hidden)
             for size in (128, 256)}
    big, _ = render(640, 480, [(320, 240, 180)])
    print(f"{'candidate':<44} {'px':>4} {'det rate':>8} {'IoU':>5} {'crop ok':>7} {'false':>6} {'ms/frame':>8}")
    for name, detect in candidates().items():
        if not any(text in name for text in args.only.split(",")):
            continue
        for size, (frames, boxes) in clips.items():
            m = measure(detect, frames, boxes)
            print(f"{name:<44} {size:>4} {m['rate']:>8.3f} {m['iou']:>5.2f} {m['crop_ok']:>7.3f} "
                  f"{m['false']:>3}/{m['hidden']:<2} {m['ms']:>8.1f}")
        start = time.perf_counter()
        for _ in range(5):
            detect(big)
        print(f"{name:<44} {640:>4} {'':>8} {'':>5} {'':>7} {'':>6} {1000 * (time.perf_counter() - start) / 5:>8.1f}")


if __name__ == "__main__":
    main()
