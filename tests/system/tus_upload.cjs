// One upload with tus-js-client (npm), as a browser's or a Node app's would be.
// Usage: node tus_upload.cjs <endpoint> <file> <filetype> <chunk bytes> [stop at bytes] [upload url]
// Prints one JSON line: {"url", "offset"} when it stopped early, {"url", "media_id"} when done.
const fs = require("fs");
const tus = require("tus-js-client");

const [endpoint, file, filetype, chunk, stopAt, uploadUrl] = process.argv.slice(2);
const data = fs.readFileSync(file);
let mediaId = null;
const upload = new tus.Upload(data, {
  endpoint,
  uploadUrl: uploadUrl || null,
  chunkSize: Number(chunk),
  retryDelays: null,
  metadata: { filename: require("path").basename(file), filetype },
  onAfterResponse(_req, res) {
    mediaId = res.getHeader("Thumbnailify-Media-Id") || mediaId;
  },
  onChunkComplete(_size, accepted) {
    if (stopAt && accepted >= Number(stopAt) && accepted < data.length) {
      upload.abort().then(() => {
        console.log(JSON.stringify({ url: upload.url, offset: accepted }));
        process.exit(0);
      });
    }
  },
  onSuccess() {
    console.log(JSON.stringify({ url: upload.url, media_id: mediaId }));
  },
  onError(error) {
    console.error(String(error));
    process.exit(1);
  },
});
upload.start();
