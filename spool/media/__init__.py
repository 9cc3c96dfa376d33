"""ffmpeg and ffprobe for the video pipeline, one module per concern.

- ``tools``: the one hardened way to run either (whitelists, no stdin, timeout, limits,
  process group), the argv builders' shared parts, MediaError and Limits;
- ``probe``: what an upload is, and why it was refused;
- ``bounds``: what its header can hide (stored and coded size, frame rate, a duration the
  streams do not confirm);
- ``keyframes``: the source's keyframes, for cutting chunks;
- ``frames``, ``chunks``, ``join``: chunked encoding (frame arithmetic, one decode per chunk
  for every rendition, the joined MP4);
- ``audio``, ``poster``: the audio track, the captions' WAV, the poster;
- ``hls``, ``storyboard``: the HLS playlists and the scrub-bar storyboard.
"""
