#!/bin/sh
# Regenerates samples/speech.mp4: ~6 s, 640x360, an ffmpeg test pattern with espeak-ng speech.
set -eu
cd "$(dirname "$0")"
espeak-ng -s 130 -w speech.wav "Welcome to Spool. This video was made for a quick demo. Hello world."
ffmpeg -hide_banner -loglevel error -y -f lavfi -i testsrc=size=640x360:rate=24 -i speech.wav \
  -filter:a apad -t 6 -c:v libx264 -preset veryslow -crf 30 -pix_fmt yuv420p \
  -c:a aac -b:a 48k -ac 1 -movflags +faststart speech.mp4
rm -f speech.wav
ls -l speech.mp4
