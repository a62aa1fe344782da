// htmx normally comes from the CDN (checked by its integrity hash); when the CDN cannot be
// reached, or the hash does not match, load the copy vendored with the app instead.
if (!window.htmx) {
  document.write('<script src="/static/vendor/htmx.min.js"><\/script>');
}
