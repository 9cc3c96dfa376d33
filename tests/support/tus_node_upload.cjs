// One upload with tus-js-client under Node, as a client Spool did not write makes it.
// node tus_node_upload.cjs <endpoint> <file> <api key> [upload URL to resume]
// Prints one JSON line: {"url", "error"?, "offset"?, "videoId"?, "jobId"?}. No retries: the
// test decides when to resume, so an interruption ends this run with its error.
const fs = require("node:fs");
const tus = require("tus-js-client");

const [endpoint, file, key, uploadUrl] = process.argv.slice(2);
const data = fs.readFileSync(file);
const seen = {};
const upload = new tus.Upload(data, {
  endpoint,
  uploadUrl: uploadUrl || null,
  headers: { Authorization: `Bearer ${key}` },
  metadata: { filename: "node clip.mp4", filetype: "video/mp4", renditions: "360p" },
  retryDelays: null,
  storeFingerprintForResuming: false,
  onAfterResponse(_req, res) {
    for (const name of ["Upload-Offset", "Spool-Video-Id", "Spool-Job-Id"]) {
      const value = res.getHeader(name);
      if (value) seen[name] = value;
    }
  },
  onError(error) {
    console.log(JSON.stringify({ url: upload.url, error: String(error), ...seen }));
    process.exit(3);
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, ...seen }));
  },
});
upload.start();
