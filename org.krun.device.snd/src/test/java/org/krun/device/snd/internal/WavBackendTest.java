package org.krun.device.snd.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.krun.api.VmConfigException;

/** The WAV backend: the file it writes, the file it records from, and its one-line errors. */
class WavBackendTest {

    static final PcmParams S16_STEREO_44K = new PcmParams(19200, 4800, 2, Snd.FMT_S16, 44100);
    static final PcmParams FLOAT_MONO_48K = new PcmParams(19200, 4800, 1, Snd.FMT_FLOAT, 48000);

    @Test
    void playbackBecomesAWavFileInTheGuestsFormat(@TempDir Path dir) throws Exception {
        Path out = dir.resolve("out.wav");
        WavBackend wav = new WavBackend(out, null);
        assertEquals(Wav.HEADER_SIZE, Files.size(out), "a valid empty file from the start");
        byte[] a = new byte[4800];
        byte[] b = new byte[4800];
        Arrays.fill(a, (byte) 1);
        Arrays.fill(b, (byte) 2);
        wav.play(0, S16_STEREO_44K, a);
        wav.play(0, S16_STEREO_44K, b);
        wav.play(0, FLOAT_MONO_48K, new byte[400]); // another format: dropped
        wav.close();
        byte[] file = Files.readAllBytes(out);
        ByteBuffer h = ByteBuffer.wrap(file).order(ByteOrder.LITTLE_ENDIAN);
        assertEquals("RIFF", new String(file, 0, 4, "US-ASCII"));
        assertEquals(36 + 9600, h.getInt(4));
        assertEquals("WAVEfmt ", new String(file, 8, 8, "US-ASCII"));
        assertEquals(Wav.TAG_PCM, h.getShort(20));
        assertEquals(2, h.getShort(22));
        assertEquals(44100, h.getInt(24));
        assertEquals(44100 * 4, h.getInt(28));
        assertEquals(4, h.getShort(32));
        assertEquals(16, h.getShort(34));
        assertEquals("data", new String(file, 36, 4, "US-ASCII"));
        assertEquals(9600, h.getInt(40));
        byte[] expected = new byte[9600];
        System.arraycopy(a, 0, expected, 0, 4800);
        System.arraycopy(b, 0, expected, 4800, 4800);
        assertArrayEquals(expected, Arrays.copyOfRange(file, 44, file.length));
    }

    @Test
    void captureGivesTheFilesSamplesThenSilenceAndSilenceInAnotherFormat(@TempDir Path dir) throws Exception {
        Path in = dir.resolve("in.wav");
        byte[] data = new byte[1000];
        for (int i = 0; i < data.length; i++) {
            data[i] = (byte) (i + 1);
        }
        byte[] header = Wav.header(S16_STEREO_44K, data.length);
        byte[] file = Arrays.copyOf(header, header.length + data.length);
        System.arraycopy(data, 0, file, header.length, data.length);
        Files.write(in, file);
        WavBackend wav = new WavBackend(null, in);
        byte[] other = new byte[64];
        wav.capture(1, FLOAT_MONO_48K, other);
        assertArrayEquals(new byte[64], other, "another format than the file's: silence");
        byte[] first = new byte[600];
        wav.capture(1, S16_STEREO_44K, first);
        assertArrayEquals(Arrays.copyOf(data, 600), first);
        byte[] second = new byte[600];
        wav.capture(1, S16_STEREO_44K, second);
        byte[] expected = new byte[600];
        System.arraycopy(data, 600, expected, 0, 400);
        assertArrayEquals(expected, second, "the rest, then silence");
        wav.close();
    }

    @Test
    void badFilesAreOneLineErrors(@TempDir Path dir) throws Exception {
        VmConfigException e = assertThrows(VmConfigException.class, () -> new WavBackend(dir.resolve("no/such/dir/out.wav"), null));
        assertTrue(e.getMessage().startsWith("sound playback file"), e.getMessage());
        assertTrue(!e.getMessage().contains("\n"));
        e = assertThrows(VmConfigException.class, () -> new WavBackend(null, dir.resolve("missing.wav")));
        assertTrue(e.getMessage().contains("missing.wav"), e.getMessage());
        Path text = dir.resolve("text.wav");
        Files.writeString(text, "not a wave file at all");
        e = assertThrows(VmConfigException.class, () -> new WavBackend(null, text));
        assertTrue(e.getMessage().contains("not a RIFF WAVE file"), e.getMessage());
        Path tiny = dir.resolve("tiny.wav");
        Files.writeString(tiny, "RIFF");
        e = assertThrows(VmConfigException.class, () -> new WavBackend(null, tiny));
        assertTrue(e.getMessage().contains("tiny.wav is not a RIFF WAVE file: it ends early"), e.getMessage());
        Path adpcm = dir.resolve("adpcm.wav");
        byte[] h = Wav.header(S16_STEREO_44K, 0);
        h[20] = 2; // MS ADPCM
        Files.write(adpcm, h);
        e = assertThrows(VmConfigException.class, () -> new WavBackend(null, adpcm));
        assertTrue(e.getMessage().contains("format tag 2"), e.getMessage());
    }
}
