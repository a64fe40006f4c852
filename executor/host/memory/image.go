// Copyright (c) nomad-driver-wasm contributors
// SPDX-License-Identifier: MPL-2.0

package memory

import (
	"errors"
	"os"
	"sync"
)

// Image is what a program's linear memory holds before its instance's
// code runs: its data segments (Parts), laid from offset 0 over Size
// bytes, whole pages. A memory made with an image starts with it, as it
// would if wazero had applied the module's data section (which the
// executor then removes from the module it compiles: dataseg.Split).
//
// On Linux the image is a sealed memfd, which every memory maps over its
// first Size bytes, private: an instance copies only the pages it writes
// (a Go module's instance writes 3 of its 323 data pages), instances of
// the same program in one process share the rest, and making an instance
// costs one mmap instead of a copy of the whole data and the zeroing of
// the pages it was copied into. Elsewhere, or where the memfd cannot be
// made, the parts are copied into each memory instead.
//
// An image is never written once made; Close releases it, after which the
// memories that map it keep their pages and the pool no longer keeps them.
type Image struct {
	size int
	// mapped: the image is a memfd, which memories map.
	mapped bool
	parts  []Part // where it is copied

	// mu guards file, the sealed memfd: Close takes it from memories
	// about to map it (its descriptor number could be another file's
	// after the close).
	mu   sync.RWMutex
	file *os.File
}

var (
	errImageClosed   = errors.New("the memory image is closed")
	errImageTooLarge = errors.New("the memory image is larger than the memory")
)

// Part is bytes of an image at Offset.
type Part struct {
	Offset uint64
	Data   []byte
}

// NewImage makes the image of parts, which do not overlap. It keeps no
// reference to their bytes where it maps them (Linux).
func NewImage(parts []Part) *Image {
	var end uint64
	for _, p := range parts {
		end = max(end, p.Offset+uint64(len(p.Data)))
	}
	page := uint64(os.Getpagesize())
	img := &Image{size: int((end + page - 1) / page * page)}
	if f, err := imageFile(img.size, parts); err == nil {
		img.file, img.mapped = f, true
	} else {
		img.parts = parts
	}
	return img
}

// Size is the bytes of memory the image covers: whole pages.
func (img *Image) Size() int { return img.size }

// Mapped says whether memories map the image (rather than copy it).
func (img *Image) Mapped() bool { return img.mapped }

// Close releases the image: memories that map it keep their pages.
func (img *Image) Close() {
	img.mu.Lock()
	defer img.mu.Unlock()
	if img.file != nil {
		_ = img.file.Close()
		img.file = nil
	}
}

// lay makes mem[:Size] hold the image: mapped over it, private, which
// also discards whatever a previous instance wrote there; or, where the
// image is copied, copied into it, which must be zero.
func (img *Image) lay(mem []byte) error {
	if len(mem) < img.size {
		return errImageTooLarge
	}
	if img.mapped {
		img.mu.RLock()
		defer img.mu.RUnlock()
		if img.file == nil {
			return errImageClosed
		}
		if err := mapImage(img.file, mem[:img.size]); err != nil {
			// Out of mappings (vm.max_map_count), say: the same bytes,
			// copied from the memfd.
			_, err = img.file.ReadAt(mem[:img.size], 0)
			return err
		}
		return nil
	}
	for _, p := range img.parts {
		copy(mem[p.Offset:], p.Data)
	}
	return nil
}
