package org.krun.api;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.nio.file.Path;
import java.util.Optional;

import org.junit.jupiter.api.Test;

class SoundSpecTest {

    @Test
    void parsesTheBackends() {
        assertEquals(SoundSpec.silent(), SoundSpec.parse("null"));
        assertEquals(SoundSpec.wav(Path.of("/tmp/out.wav"), null), SoundSpec.parse("wav:/tmp/out.wav"));
        assertEquals(SoundSpec.wav(Path.of("out.wav"), Path.of("in.wav")), SoundSpec.parse("wav:out.wav,capture=in.wav"));
        assertEquals(new SoundSpec("null", Optional.empty(), Optional.of(Path.of("in.wav"))),
                SoundSpec.parse("null,capture=in.wav"));
        assertEquals(new SoundSpec("pulse", Optional.empty(), Optional.empty()), SoundSpec.parse("pulse"));
        assertEquals("snd", SoundSpec.silent().type());
    }

    @Test
    void badValuesAreOneLineErrors() {
        for (String bad : new String[] {"", "jack", "pulse,capture=x.wav", "wav", "wav:", "null,capture=", "null,turbo=1",
            "wav:a,capture=b,capture=c"}) {
            VmConfigException e = assertThrows(VmConfigException.class, () -> SoundSpec.parse(bad), bad);
            assertEquals(1, e.getMessage().lines().count(), e.getMessage());
        }
        assertThrows(VmConfigException.class, () -> new SoundSpec("null", Optional.of(Path.of("x")), Optional.empty()));
    }
}
