# web: the run page funders and holders use from a browser wallet (web/README.md).
#   make web        build web/dist (any static host serves it; config in web/config.json)
#   make web-test   the page in headless Chromium against crowdtrain-localnet (in `make test`)
#   make web-demo   a local chain with a funded run and the page with a test wallet;
#                   prints the URL and runs until Ctrl-C (not part of `make demo`)
# npm packages go to web/node_modules from web/package-lock.json; the browser is
# Debian's chromium-headless-shell, driven by playwright-core (nothing downloads one).

WEB_BROWSER_APT := chromium-headless-shell

.PHONY: web web-deps web-browser web-test web-demo web-demo-hint

web-deps: web/node_modules/.package-lock.json

# npm writes node_modules/.package-lock.json: reinstall only when the lock changed.
web/node_modules/.package-lock.json: web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

web-browser:
	@dpkg -s $(WEB_BROWSER_APT) >/dev/null 2>&1 || { \
		echo "web: installing $(WEB_BROWSER_APT) (the browser of the page's test)"; \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -qq && $$SUDO env DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq --no-install-recommends $(WEB_BROWSER_APT) fonts-dejavu-core; }

web: web-deps
	cd web && node build.mjs

# The localnet binary comes from the workspace's test build (`make test` has just
# made it, so this is a no-op there): building the one package alone would resolve
# the dependencies' features differently and recompile half of them.
WEB_CARGO_BUILD := cargo test -q --workspace --all-targets --no-run

web-test: web web-browser contracts
	$(WEB_CARGO_BUILD)
	cd web && node --test --test-concurrency=1 test/

web-demo: web contracts
	$(WEB_CARGO_BUILD)
	cd web && node dev/demo.mjs

web-demo-hint:
	@echo "To deposit and claim from a browser wallet on a local chain: make web-demo"

PREPARE += web-deps web-browser
CHECKS += web-test
DEMOS += web-demo-hint
