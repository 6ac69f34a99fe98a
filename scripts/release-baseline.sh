#!/usr/bin/env bash
# Releases one module as the baseline bnd checks later builds against: builds MODULE with its version set to
# VERSION and deploys the jar into the project's release repository, cnf/releases (a Maven repository kept in
# git; the parent POM declares it, and bnd-baseline-maven-plugin takes the newest release there below the
# module's own version). Running it again for a VERSION that is already there replaces that release: that is
# how a baseline is regenerated when the API changed again before the release was published.
#
#   scripts/release-baseline.sh MODULE VERSION [MAVEN_ARGS...]
#   scripts/release-baseline.sh org.krun.api 1.0.0 -Dmaven.repo.local=/work/m2/repository
#
# The build runs on a copy of the project (the folder at or above MODULE that holds .mvn, as Maven finds it),
# so the working tree and its target folders stay as they are and nothing is installed into the local
# repository. MAVEN_ARGS go to every mvn call (-o only to the build: Maven refuses to deploy offline).
# deploy:deploy-file rather than install:install-file: only a deploy writes maven-metadata.xml, the list of
# versions a remote repository's readers (the baseline plugin's version lookup) go by. Afterwards the local
# repository's cached copy of that release is removed, so the next build baselines against the new jar.
# Then keep the module's development version above VERSION (its pom.xml and the parent's ARTIFACTID.version).
set -euo pipefail

if [[ $# -lt 2 ]]; then
    sed -n '8,9p' "$0" | sed 's/^# *//' >&2
    exit 2
fi
module="$(cd "$1" && pwd)"
version="$2"
shift 2
mvn_args=("$@")
say() { printf '[release] %s\n' "$*" >&2; }

# The project root: the nearest folder at or above the module with a .mvn folder.
root="$module"
while [[ ! -d "$root/.mvn" ]]; do
    [[ "$root" != / ]] || { echo "release-baseline: no .mvn folder above $module" >&2; exit 2; }
    root="$(dirname "$root")"
done
rel="${module#"$root"}"
rel="${rel#/}"
releases="$root/cnf/releases"

# The local repository the builds use: -Dmaven.repo.local if given, else Maven's default.
local_repo="$HOME/.m2/repository"
deploy_args=()
for a in "${mvn_args[@]}"; do
    case "$a" in
        -Dmaven.repo.local=*) local_repo="${a#-Dmaven.repo.local=}"; deploy_args+=("$a") ;;
        -o|--offline) ;;
        *) deploy_args+=("$a") ;;
    esac
done

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
say "copying the project at $root"
tar -C "$root" --exclude=./.git --exclude=target --exclude=./cnf/releases -cf - . | tar -C "$work" -xf -
pom="$work/${rel:+$rel/}pom.xml"

# The module's own <version>: the first one after </parent> (or the first one at all without a parent).
if grep -q '</parent>' "$pom"; then
    sed -i '/<\/parent>/,/<version>/ s|<version>[^<]*</version>|<version>'"$version"'</version>|' "$pom"
else
    sed -i '0,/<version>[^<]*<\/version>/ s||<version>'"$version"'</version>|' "$pom"
fi

say "building ${rel:-the project} as $version"
log="$work/build.log"
if ! mvn -B -Dstyle.color=never -f "$work/pom.xml" ${rel:+-pl "$rel" -am} package -Dmaven.test.skip=true \
        -DskipITs -Dbnd.baseline.skip=true -Denforcer.skip=true "${mvn_args[@]}" >"$log" 2>&1; then
    grep -E 'ERROR|BUILD' "$log" | head -n 20 >&2
    echo "release-baseline: the build failed" >&2
    exit 1
fi
jar="$(ls "$work/${rel:+$rel/}target/"*-"$version".jar 2>/dev/null | head -n 1)"
if [[ -z "$jar" ]]; then
    echo "release-baseline: no jar of version $version: does ${rel:-the project}'s pom.xml have a <version> of its own?" >&2
    exit 1
fi
mkdir "$work/jar"
(cd "$work/jar" && "${JAVA_HOME:+$JAVA_HOME/bin/}jar" xf "$jar" META-INF/MANIFEST.MF META-INF/maven)
props="$(cat "$work"/jar/META-INF/maven/*/*/pom.properties)"
group="$(sed -n 's/^groupId=//p' <<<"$props")"
artifact="$(sed -n 's/^artifactId=//p' <<<"$props")"
manifest="$(tr -d '\r' <"$work/jar/META-INF/MANIFEST.MF" | sed -e ':a' -e 'N' -e '$!ba' -e 's/\n //g')"

# Replace any earlier release of this version, then deploy: the jar, the pom it carries, checksums and the
# maven-metadata.xml that lists the released versions.
path="${group//.//}/$artifact"
rm -rf "${releases:?}/$path/$version"
deploy_log="$work/deploy.log"
if ! (mkdir "$work/deploy" && cd "$work/deploy" && mvn -B -Dstyle.color=never org.apache.maven.plugins:maven-deploy-plugin:3.1.4:deploy-file \
        -Dfile="$jar" -DgroupId="$group" -DartifactId="$artifact" -Dversion="$version" -Dpackaging=jar \
        -DrepositoryId=krun-releases -Durl="file://$releases" "${deploy_args[@]}") >"$deploy_log" 2>&1; then
    grep -E 'ERROR|BUILD' "$deploy_log" | head -n 20 >&2
    echo "release-baseline: the deploy to $releases failed" >&2
    exit 1
fi
rm -rf "${local_repo:?}/$path/$version"

say "released $group:$artifact:$version to $releases"
grep -E '^(Bundle-SymbolicName|Bundle-Version|Export-Package):' <<<"$manifest" | sed 's/^/[release]   /' >&2
