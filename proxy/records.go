package proxy

import "encoding/binary"

// batchCount is what countBatches found in a record set.
type batchCount struct {
	Records int64 // records in complete batches, control batches excluded
	Bytes   int64 // bytes of the complete batches (a trailing partial batch excluded)
}

// countBatches counts the records and bytes of the record batches in b from
// their headers, without decompressing anything (KIP-388):
//
//   - magic 2 batches: the record count at byte 57 of the 61-byte header;
//     transaction control batches (attribute bit 5) count their bytes but
//     no records;
//   - magic 0 and 1 message sets: one record per outer message, so a
//     compressed wrapper message counts as one (its inner messages would
//     need decompression);
//   - a partial batch at the end (a fetch response may end inside one) is
//     not counted; the client fetches it again whole.
//
// A corrupt length stops the count at that point.
func countBatches(b []byte) batchCount {
	var c batchCount
	for len(b) >= 17 {
		length := int32(binary.BigEndian.Uint32(b[8:12]))
		if length < 5 || int64(length) > int64(len(b)-12) {
			break
		}
		total := 12 + int(length)
		switch magic := b[16]; magic {
		case 2:
			if total < 61 {
				return c
			}
			attrs := binary.BigEndian.Uint16(b[21:23])
			if attrs&0x20 == 0 {
				if n := int32(binary.BigEndian.Uint32(b[57:61])); n > 0 {
					c.Records += int64(n)
				}
			}
		case 0, 1:
			c.Records++
		default:
			return c
		}
		c.Bytes += int64(total)
		b = b[total:]
	}
	return c
}
