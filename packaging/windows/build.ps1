<#
usage: powershell -File packaging/windows/build.ps1 [-Python python] [-DistDir dist] [-BuildDir build]

Builds AVA Tray for Windows: the PyInstaller one-folder bundle (packaging/ava-tray.spec) from a clean
build dir, checks it with `ava-tray.exe --self-test`, then makes a portable .zip and the Inno Setup
installer (packaging/windows/ava-tray.iss) in DistDir, and prints sizes and build time.
#>
param(
    [string]$Python = "python",
    [string]$DistDir = "dist",
    [string]$BuildDir = "build"
)
$ErrorActionPreference = "Stop"
Set-Location (Resolve-Path "$PSScriptRoot\..\..")
$clock = [Diagnostics.Stopwatch]::StartNew()

$version = (& $Python -c "import ava_tray; print(ava_tray.__version__)").Trim()
if ($LASTEXITCODE) { throw "cannot import ava_tray with $Python: run pip install -e .[dev]" }
New-Item -ItemType Directory -Force $DistDir, $BuildDir | Out-Null
$DistDir = (Resolve-Path $DistDir).Path
$BuildDir = (Resolve-Path $BuildDir).Path
Remove-Item -Recurse -Force "$BuildDir\pyinstaller", "$BuildDir\bundle" -ErrorAction SilentlyContinue

Write-Host "build: PyInstaller (ava-tray $version)"
& $Python -m PyInstaller --noconfirm --clean --log-level WARN `
    --workpath "$BuildDir\pyinstaller" --distpath "$BuildDir\bundle" packaging\ava-tray.spec
if ($LASTEXITCODE) { throw "PyInstaller failed" }
$bundle = "$BuildDir\bundle\ava-tray"

# A windowed app: Start-Process waits for it and keeps its output.
Write-Host "build: self-test of the frozen app"
$report = "$BuildDir\self-test.txt"
$run = Start-Process -FilePath "$bundle\ava-tray.exe" -ArgumentList "--self-test" -Wait -PassThru -NoNewWindow `
    -RedirectStandardOutput $report -RedirectStandardError "$BuildDir\self-test.err"
Get-Content $report, "$BuildDir\self-test.err"
if ($run.ExitCode -ne 0) { throw "the frozen app's self-test failed (exit $($run.ExitCode))" }

$zip = "$DistDir\AVA-Tray-$version-windows-x64.zip"
Remove-Item -Force $zip -ErrorAction SilentlyContinue
Compress-Archive -Path $bundle -DestinationPath $zip

$iscc = (Get-Command iscc.exe -ErrorAction SilentlyContinue).Source
if (-not $iscc) { $iscc = "${env:ProgramFiles(x86)}\Inno Setup 6\ISCC.exe" }
if (-not (Test-Path $iscc)) { throw "Inno Setup 6 not found: choco install innosetup" }
& $iscc /Q "/DAppVersion=$version" "/DSourceDir=$bundle" "/DOutputDir=$DistDir" `
    "/DIconFile=$BuildDir\pyinstaller\ava-tray\ava-tray.ico" packaging\windows\ava-tray.iss
if ($LASTEXITCODE) { throw "Inno Setup failed" }
$setup = "$DistDir\AVA-Tray-$version-windows-x64-setup.exe"

$unpacked = (Get-ChildItem -Recurse -File $bundle | Measure-Object -Sum Length).Sum
Write-Host ("build: figures for ava-tray {0} (windows x64)" -f $version)
Write-Host ("  bundle unpacked  {0,6:N1} MB" -f ($unpacked / 1e6))
Write-Host ("  zip              {0,6:N1} MB  {1}" -f ((Get-Item $zip).Length / 1e6), $zip)
Write-Host ("  installer        {0,6:N1} MB  {1}" -f ((Get-Item $setup).Length / 1e6), $setup)
Write-Host ("  build time       {0,6:N1} s" -f $clock.Elapsed.TotalSeconds)
