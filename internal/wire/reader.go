package wire

import "encoding/binary"

// reader decodes the body of one message with bounds checks. b is the message
// without its trailer. The first failure sticks in err and makes every later read
// return zero.
type reader struct {
	b   []byte
	off int
	t   Type
	err error
}

// need reports whether n more bytes are available, recording an error if not.
func (r *reader) need(n int) bool {
	if r.err != nil {
		return false
	}
	if len(r.b)-r.off < n {
		r.err = perr(r.t, CodeCnfErr, "length %d is too short for its contents", len(r.b)+TrailerLen)
		return false
	}
	return true
}

func (r *reader) skip(n int) {
	if r.need(n) {
		r.off += n
	}
}

func (r *reader) copy(dst []byte) {
	if r.need(len(dst)) {
		r.off += copy(dst, r.b[r.off:])
	}
}

func (r *reader) u8() uint8 {
	if !r.need(1) {
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	r.off += 2
	return binary.BigEndian.Uint16(r.b[r.off-2:])
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	r.off += 4
	return binary.BigEndian.Uint32(r.b[r.off-4:])
}

func (r *reader) u64() uint64 {
	if !r.need(8) {
		return 0
	}
	r.off += 8
	return binary.BigEndian.Uint64(r.b[r.off-8:])
}

// end returns the first error, or an error if bytes are left before the trailer.
func (r *reader) end() error {
	if r.err != nil {
		return r.err
	}
	if r.off != len(r.b) {
		return perr(r.t, CodeCnfErr, "length %d, contents need %d", len(r.b)+TrailerLen, r.off+TrailerLen)
	}
	return nil
}

// finish returns m, or nil and the error if r failed or has bytes left.
func finish[M any](m *M, r *reader) (*M, error) {
	if err := r.end(); err != nil {
		return nil, err
	}
	return m, nil
}
