// Spool's web page: plain JS modules against the /v1 API, served as they are (no bundler).
// api.js: requests and the API key; grants.js: the open video and its read grant;
// videos.js: the open video's polling, its delete, the list, the address; status.js: a status shown;
// player.js: hls.js or progressive MP4, quality menu, captions; storyboard.js: the scrub bar
// and its previews; uploads.js; posts.js: the blog panel.
import { loadConfig, wireKeyButton } from "./api.js";
import { exposeGrant } from "./grants.js";
import { wirePlayer } from "./player.js";
import { wirePosts } from "./posts.js";
import { wireScrubBar } from "./storyboard.js";
import { wireUploads } from "./uploads.js";
import { refreshList, videoInAddress, wireDelete } from "./videos.js";

wireKeyButton();
wireUploads();
wirePlayer();
wireScrubBar();
wirePosts();
wireDelete();
exposeGrant();
window.addEventListener("hashchange", videoInAddress);

loadConfig().then(() => { refreshList(); videoInAddress(); });
setInterval(refreshList, 5000);
