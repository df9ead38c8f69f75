# The two commands of the README:
#   make demo   set up, build and run the end-to-end demo on the bundled data
#   make test   set up, build and run every test (CTest)
BUILD ?= build
JOBS ?= $(shell nproc)

.PHONY: all setup configure build test demo bench clean

all: build

setup:
	@bash scripts/setup.sh

configure: setup
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release >/dev/null

build: configure
	@cmake --build $(BUILD) -j $(JOBS)

test: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

demo: build
	@bash scripts/demo.sh

bench: build
	@bash bench/run_all.sh

clean:
	rm -rf $(BUILD)
