# bulwark build. Object lists live in Kbuild; this file only holds rules.
#   make               build everything into build/
#   make SANITIZE=1    the same with ASan+UBSan (objects rebuild when flags change)
#   make check [SUITE=unit|bpf|netns|vm] [TEST=pattern] [CI=true]
#                      CI=true: a skip is a failure (.ci/run sets it; `sudo` drops the
#                      environment, so pass it as a make argument: `sudo make check CI=true`)
#   make demo          the end-to-end demo (root)
#   make V=1           show commands
#   make docs          man pages and bash completion, from the help texts (help2man), in build/
#   make install [PREFIX=/usr/local] [DESTDIR=]   binaries, bulwark-storage (library, headers,
#                      pkg-config file), systemd units
#   make image         OCI image archive build/image/bulwark-oci.tar (scripts/build-image.sh)
include Kbuild

BUILD   ?= build
CC      ?= cc
CLANG   ?= clang
BPFTOOL ?= bpftool
PKG_CONFIG ?= pkg-config

ifeq ($(V),1)
Q :=
else
Q := @
endif

pkgs-all := $(sort $(pkgs-y) $(foreach p,$(bin-y) $(test-unit-y) $(test-bpf-y) $(bench-y) $(lib-y),$($(p)-pkgs)))
PKG_CFLAGS := $(shell $(PKG_CONFIG) --cflags $(pkgs-all))

CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -fno-strict-aliasing -D_GNU_SOURCE \
           -fstack-protector-strong -D_FORTIFY_SOURCE=2 -fPIC
CPPFLAGS += -I. -Ibpf -Iuserspace -Istorage/include -I$(BUILD)/include -I$(BUILD)/gen $(PKG_CFLAGS) -MMD -MP
LDFLAGS ?=
ifeq ($(SANITIZE),1)
CFLAGS  := $(filter-out -D_FORTIFY_SOURCE=2,$(CFLAGS)) -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS += -fsanitize=address,undefined
endif

BPF_CFLAGS := -target bpf -O2 -g -Wall -Werror -D__TARGET_ARCH_x86 \
              -I. -Ibpf -I/usr/include/$(shell $(CC) -dumpmachine)

obj = $(addprefix $(BUILD)/obj/,$(1))
libfile = $(addprefix $(BUILD)/lib/lib,$(addsuffix .a,$(1)))

BPF_OBJS := $(addprefix $(BUILD)/,$(notdir $(bpf-y)))
SKELS    := $(patsubst %.bpf.o,$(BUILD)/include/%.skel.h,$(notdir $(bpf-y)))
LIBS     := $(call libfile,$(lib-y))
BINS     := $(addprefix $(BUILD)/bin/,$(bin-y))
UNIT     := $(addprefix $(BUILD)/tests/unit/,$(test-unit-y))
BPFTESTS := $(addprefix $(BUILD)/tests/bpf/,$(test-bpf-y))
# built by `all` (so by `make check`) though only scripts/bench runs them: an API change that
# breaks a benchmark fails the build, not the next benchmark run
BENCHES  := $(addprefix $(BUILD)/bench/,$(bench-y))
ALL_OBJS := $(call obj,$(foreach p,$(lib-y) $(bin-y) $(test-unit-y) $(test-bpf-y) $(bench-y),$($(p)-objs)))

.PHONY: all check clean bpf distclean
all: $(LIBS) $(BINS) $(UNIT) $(BPFTESTS) $(BPF_OBJS) $(BENCHES)
bpf: $(BPF_OBJS) $(SKELS)

# -fno-sanitize-recover=all: undefined behaviour aborts, so libFuzzer reports it as a finding
# (with recovery, UBSan logs "runtime error:" and the target goes on to exit 0).
FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer \
               -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -DBULWARK_FUZZING
# Rebuild everything when the compiler flags change (e.g. SANITIZE=1 after a plain build).
FLAGS_STAMP := $(BUILD)/.flags
# (BUILD spelled relative or absolute is the same build: no rebuild when a script passes $(abspath))
flags-now := $(CC) $(CFLAGS) $(subst -I$(BUILD)/include,-IBUILD/include,$(CPPFLAGS)) $(LDFLAGS) $(FUZZ_CFLAGS)
ifneq ($(flags-now),$(shell cat $(FLAGS_STAMP) 2>/dev/null))
$(shell mkdir -p $(BUILD) && printf '%s' '$(flags-now)' > $(FLAGS_STAMP))
endif

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP) | $(SKELS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

# protobuf-c code generation (proto-y, proto-sys-y in Kbuild): every object waits for the headers.
PROTOC_C  ?= protoc-c
PROTO_INC ?= /usr/include
PROTO_H   := $(patsubst %.proto,$(BUILD)/gen/%.pb-c.h,$(proto-y) $(proto-sys-y))
$(BUILD)/gen/%.pb-c.c $(BUILD)/gen/%.pb-c.h: %.proto
	@mkdir -p $(BUILD)/gen
	@$(if $(Q),echo "  PROTO   $<")
	$(Q)$(PROTOC_C) -I. -I$(PROTO_INC) --c_out=$(BUILD)/gen $<
$(BUILD)/gen/google/protobuf/%.pb-c.c $(BUILD)/gen/google/protobuf/%.pb-c.h: $(PROTO_INC)/google/protobuf/%.proto
	@mkdir -p $(BUILD)/gen
	@$(if $(Q),echo "  PROTO   $<")
	$(Q)$(PROTOC_C) -I$(PROTO_INC) --c_out=$(BUILD)/gen $<
$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c $(FLAGS_STAMP)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<
$(ALL_OBJS): | $(PROTO_H)

# BPF objects are named by their file name; bpf-y may point anywhere in the tree.
define bpf_rule
$(BUILD)/$(notdir $(1)): $(1:.o=.c)
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  BPF     $$<")
	$$(Q)$$(CLANG) $$(BPF_CFLAGS) -MMD -MP -MF $$@.d -c -o $$@ $$<
endef
$(foreach b,$(bpf-y),$(eval $(call bpf_rule,$(b))))

$(BUILD)/include/%.skel.h: $(BUILD)/%.bpf.o
	@mkdir -p $(@D)
	@$(if $(Q),echo "  SKEL    $@")
	$(Q)$(BPFTOOL) gen skeleton $< name $(subst -,_,$*) > $@.tmp && mv $@.tmp $@

define lib_rule
$(call libfile,$(1)): $(call obj,$($(1)-objs))
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  AR      $$@")
	$$(Q)rm -f $$@ && ar rcs $$@ $$^
endef
$(foreach l,$(lib-y),$(eval $(call lib_rule,$(l))))

# $(1) = output dir, $(2) = program name
define prog_rule
$(1)/$(2): $(call obj,$($(2)-objs)) $(call libfile,$($(2)-libs))
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  LD      $$@")
	$$(Q)$$(CC) $$(CFLAGS) $$(LDFLAGS) -o $$@ $$(call obj,$$($(2)-objs)) \
	  $$(call libfile,$$($(2)-libs)) $$(shell $$(PKG_CONFIG) --libs $$($(2)-pkgs)) -lpthread
endef
$(foreach p,$(bin-y),$(eval $(call prog_rule,$(BUILD)/bin,$(p))))
$(foreach p,$(test-unit-y),$(eval $(call prog_rule,$(BUILD)/tests/unit,$(p))))
$(foreach p,$(test-bpf-y),$(eval $(call prog_rule,$(BUILD)/tests/bpf,$(p))))
$(foreach p,$(bench-y),$(eval $(call prog_rule,$(BUILD)/bench,$(p))))

# libFuzzer targets: their own objects (clang, instrumented) under $(BUILD)/fuzz/obj.
FUZZERS := $(addprefix $(BUILD)/fuzz/,$(fuzz-y))
$(BUILD)/fuzz/obj/%.o: %.c $(FLAGS_STAMP) | $(SKELS)
	@mkdir -p $(@D)
	@$(if $(Q),echo "  FUZZCC  $<")
	$(Q)$(CLANG) $(CPPFLAGS) $(FUZZ_CFLAGS) -c -o $@ $<
define fuzz_rule
$(BUILD)/fuzz/$(1): $(addprefix $(BUILD)/fuzz/obj/,$($(1)-objs))
	@mkdir -p $$(@D)
	@$$(if $$(Q),echo "  FUZZLD  $$@")
	$$(Q)$$(CLANG) -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $$@ $$^ $$(shell $$(PKG_CONFIG) --libs $$($(1)-pkgs)) -lpthread
endef
$(foreach f,$(fuzz-y),$(eval $(call fuzz_rule,$(f))))
.PHONY: fuzz
fuzz: $(FUZZERS)

SUITE ?= unit bpf netns vm
check: all fuzz
	$(Q)BUILD=$(abspath $(BUILD)) $(if $(CI),CI=$(CI)) tests/run $(SUITE)

# --- install: PREFIX is where things run from, DESTDIR a staging root (packages, the image) ---
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
LIBDIR      ?= $(PREFIX)/lib
INCLUDEDIR  ?= $(PREFIX)/include
DOCDIR      ?= $(PREFIX)/share/doc/bulwark
MANDIR      ?= $(PREFIX)/share/man
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
INSTALL     ?= install
UNITS := $(basename $(notdir $(wildcard deploy/systemd/*.service.in)))
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions

# Man pages and the bash completion, generated from the help texts and the CLI's table (help2man).
DOCS := $(BUILD)/man/bulwark.1 $(BUILD)/man/bulwarkd.8 $(BUILD)/man/bulwark-keyservice.8 \
        $(BUILD)/man/bulwark-csi.8 $(BUILD)/completion/bulwark
.PHONY: docs
docs: $(DOCS)
$(DOCS) &: $(BINS) scripts/gen-docs.sh
	$(Q)scripts/gen-docs.sh $(BUILD)

.PHONY: install uninstall
install: $(BINS) $(call libfile,storage common) $(DOCS)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/bulwark $(DESTDIR)$(INCLUDEDIR)/bulwark \
	  $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(SYSTEMDUNITDIR) $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 0755 $(BINS) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0644 $(call libfile,storage common) $(DESTDIR)$(LIBDIR)/bulwark/
	$(INSTALL) -m 0644 storage/include/bulwark/storage.h bpf/bulwark_abi.h $(DESTDIR)$(INCLUDEDIR)/bulwark/
	sed -e '/^top=/d' -e 's|^includedir=.*|includedir=$(INCLUDEDIR)|' -e 's|^libdir=.*|libdir=$(LIBDIR)/bulwark|' \
	  -e '/^#/d' storage/bulwark-storage.pc > $(DESTDIR)$(PKGCONFIGDIR)/bulwark-storage.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/bulwark-storage.pc
	for u in $(UNITS); do \
	  sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' deploy/systemd/$$u.in \
	    > $(DESTDIR)$(SYSTEMDUNITDIR)/$$u && chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/$$u || exit 1; \
	done
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -d $(DESTDIR)$(DOCDIR)/storage $(DESTDIR)$(DOCDIR)/userspace/keyservice $(DESTDIR)$(DOCDIR)/wireguard-conf
	$(INSTALL) -m 0644 storage/README.md $(DESTDIR)$(DOCDIR)/storage/
	$(INSTALL) -m 0644 userspace/keyservice/README.md $(DESTDIR)$(DOCDIR)/userspace/keyservice/
	$(INSTALL) -m 0644 wireguard-conf/README.md $(DESTDIR)$(DOCDIR)/wireguard-conf/
	$(INSTALL) -d $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR)
	$(INSTALL) -m 0644 $(filter %.1,$(DOCS)) $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 $(filter %.8,$(DOCS)) $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 $(BUILD)/completion/bulwark $(DESTDIR)$(BASHCOMPDIR)/bulwark

uninstall:
	rm -f $(addprefix $(DESTDIR)$(BINDIR)/,$(bin-y)) $(addprefix $(DESTDIR)$(SYSTEMDUNITDIR)/,$(UNITS)) \
	  $(DESTDIR)$(PKGCONFIGDIR)/bulwark-storage.pc $(DESTDIR)$(INCLUDEDIR)/bulwark/storage.h \
	  $(DESTDIR)$(INCLUDEDIR)/bulwark/bulwark_abi.h $(DESTDIR)$(LIBDIR)/bulwark/libstorage.a \
	  $(DESTDIR)$(LIBDIR)/bulwark/libcommon.a
	rm -f $(DESTDIR)$(MANDIR)/man1/bulwark.1 $(addprefix $(DESTDIR)$(MANDIR)/man8/,bulwarkd.8 \
	  bulwark-keyservice.8 bulwark-csi.8) $(DESTDIR)$(BASHCOMPDIR)/bulwark
	rm -rf $(DESTDIR)$(DOCDIR)
	-rmdir $(DESTDIR)$(INCLUDEDIR)/bulwark $(DESTDIR)$(LIBDIR)/bulwark 2>/dev/null

# --- image: an OCI image archive from Debian packages (mmdebstrap + umoci), no registry ---
IMAGE ?= $(BUILD)/image/bulwark-oci.tar
IMAGE_TAG ?= dev
.PHONY: image
image: $(BINS)
	$(Q)BUILD=$(abspath $(BUILD)) IMAGE=$(abspath $(IMAGE)) IMAGE_TAG=$(IMAGE_TAG) scripts/build-image.sh

.PHONY: demo
demo: all
	$(Q)BUILD=$(abspath $(BUILD)) bash scripts/demo.sh

clean:
	rm -rf $(BUILD)/obj $(BUILD)/bin $(BUILD)/lib $(BUILD)/tests $(BUILD)/include $(BUILD)/gen $(BUILD)/*.bpf.o* $(FLAGS_STAMP)
distclean:
	rm -rf $(BUILD)

FUZZ_OBJS := $(addprefix $(BUILD)/fuzz/obj/,$(sort $(foreach f,$(fuzz-y),$($(f)-objs))))
-include $(ALL_OBJS:.o=.d) $(FUZZ_OBJS:.o=.d) $(addsuffix .d,$(BPF_OBJS))
