package org.krun.device.snd.internal;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;

/**
 * RIFF WAVE files: the 44-byte header of a PCM or IEEE-float file for the samples a stream plays, and the
 * reading of such a file's format and samples for capture. Only what the device's formats need: 8-bit
 * unsigned, 16 and 32-bit signed little-endian integers, 32-bit floats.
 */
final class Wav {

    static final int HEADER_SIZE = 44;
    static final int TAG_PCM = 1;
    static final int TAG_IEEE_FLOAT = 3;
    static final int TAG_EXTENSIBLE = 0xfffe;
    /** The most sample bytes a capture file may hold: it is read whole when the device is made. */
    static final long MAX_CAPTURE_BYTES = 64L << 20;

    private Wav() {
    }

    /** A header for {@code dataBytes} of samples in {@code params}' format. */
    static byte[] header(PcmParams params, long dataBytes) {
        long data = Math.min(dataBytes, 0xffffffffL - 36);
        ByteBuffer b = ByteBuffer.allocate(HEADER_SIZE).order(ByteOrder.LITTLE_ENDIAN);
        b.put("RIFF".getBytes(java.nio.charset.StandardCharsets.US_ASCII)).putInt((int) (36 + data));
        b.put("WAVE".getBytes(java.nio.charset.StandardCharsets.US_ASCII));
        b.put("fmt ".getBytes(java.nio.charset.StandardCharsets.US_ASCII)).putInt(16);
        b.putShort((short) (params.format() == Snd.FMT_FLOAT ? TAG_IEEE_FLOAT : TAG_PCM));
        b.putShort((short) params.channels());
        b.putInt(params.rateHz());
        b.putInt((int) params.bytesPerSecond());
        b.putShort((short) params.frameBytes());
        b.putShort((short) (params.sampleBytes() * 8));
        b.put("data".getBytes(java.nio.charset.StandardCharsets.US_ASCII)).putInt((int) data);
        return b.array();
    }

    /** A WAV file's samples and their format (buffer sizes unset). */
    record Samples(PcmParams format, byte[] data) {
    }

    /** Reads a WAV file whole; an {@link IOException} with a one-line reason if it is not one this device can record from. */
    static Samples read(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            return read(file, ch);
        } catch (java.io.EOFException e) {
            throw new IOException(file + " is not a RIFF WAVE file: it ends early");
        }
    }

    private static Samples read(Path file, FileChannel ch) throws IOException {
        ByteBuffer riff = readFully(ch, 0, 12);
        if (!tag(riff, 0).equals("RIFF") || !tag(riff, 8).equals("WAVE")) {
            throw new IOException(file + " is not a RIFF WAVE file");
        }
        long at = 12;
        PcmParams format = null;
        long size = ch.size();
        while (at + 8 <= size) {
            ByteBuffer chunk = readFully(ch, at, 8);
            String id = tag(chunk, 0);
            long length = chunk.getInt(4) & 0xffffffffL;
            if (id.equals("fmt ")) {
                if (length < 16) {
                    throw new IOException(file + ": fmt chunk of " + length + " bytes");
                }
                format = format(file, readFully(ch, at + 8, 16));
            } else if (id.equals("data")) {
                if (format == null) {
                    throw new IOException(file + ": data chunk before the fmt chunk");
                }
                long available = Math.min(length, size - at - 8);
                if (available > MAX_CAPTURE_BYTES) {
                    throw new IOException(file + " holds " + available + " bytes of samples, more than the "
                            + (MAX_CAPTURE_BYTES >> 20) + " MiB a capture file may");
                }
                return new Samples(format, readFully(ch, at + 8, (int) available).array());
            }
            at += 8 + length + (length & 1);
        }
        throw new IOException(file + " has no data chunk");
    }

    private static PcmParams format(Path file, ByteBuffer fmt) throws IOException {
        int tag = fmt.getShort(0) & 0xffff;
        int channels = fmt.getShort(2) & 0xffff;
        int rate = fmt.getInt(4);
        int bits = fmt.getShort(14) & 0xffff;
        int format;
        if ((tag == TAG_PCM || tag == TAG_EXTENSIBLE) && bits == 8) {
            format = Snd.FMT_U8;
        } else if ((tag == TAG_PCM || tag == TAG_EXTENSIBLE) && bits == 16) {
            format = Snd.FMT_S16;
        } else if ((tag == TAG_PCM || tag == TAG_EXTENSIBLE) && bits == 32) {
            format = Snd.FMT_S32;
        } else if (tag == TAG_IEEE_FLOAT && bits == 32) {
            format = Snd.FMT_FLOAT;
        } else {
            throw new IOException(file + ": WAV format tag " + tag + " with " + bits
                    + "-bit samples (expected 8, 16 or 32-bit PCM or 32-bit float)");
        }
        if (channels < 1 || channels > VirtioSnd.MAX_CHANNELS) {
            throw new IOException(file + ": " + channels + " channels (expected 1 or 2)");
        }
        if (rate <= 0) {
            throw new IOException(file + ": sample rate " + rate);
        }
        return new PcmParams(0, 0, channels, format, rate);
    }

    private static ByteBuffer readFully(FileChannel ch, long at, int n) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(n).order(ByteOrder.LITTLE_ENDIAN);
        while (b.hasRemaining()) {
            if (ch.read(b, at + b.position()) < 0) {
                throw new java.io.EOFException();
            }
        }
        return b.flip();
    }

    private static String tag(ByteBuffer b, int at) {
        byte[] t = new byte[4];
        b.get(at, t);
        return new String(t, java.nio.charset.StandardCharsets.US_ASCII);
    }
}
